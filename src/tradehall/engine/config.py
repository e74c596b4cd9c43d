"""The engine's settings (`EngineConfig`), part of its snapshot.

A module of its own because it defines a msgspec Struct, which the compiled build (`make compile`)
leaves interpreted: keeping it out of `state.py` lets the engine's shared state compile to a native
class, whose attribute reads on every command are direct.
"""

from __future__ import annotations

import msgspec

from tradehall.domain.market import DEFAULT_CURRENCY_DECIMALS
from tradehall.domain.tiers import DEFAULT_TIERS, TierSpec


class EngineConfig(msgspec.Struct, frozen=True, kw_only=True):
    """Engine-wide settings; part of the snapshot, so a restored engine behaves the same.

    `incremental_marks`: a mark touches only the accounts whose mark interval it leaves (False:
    every account with a position in the market, the plain oracle for tests).
    """

    currency_decimals: dict[str, int] = msgspec.field(default_factory=lambda: dict(DEFAULT_CURRENCY_DECIMALS))
    default_currency_decimals: int = 8
    tiers: dict[str, TierSpec] = msgspec.field(default_factory=lambda: dict(DEFAULT_TIERS))
    quote_max_age_ms: int = 10_000
    max_open_orders: int = 1_000
    incremental_marks: bool = True
    id_base: int = 0
    """Order and trade ids of this engine are above it (a cluster shard's range; `Configure`)."""

    def decimals(self, currency: str) -> int:
        return self.currency_decimals.get(currency, self.default_currency_decimals)
