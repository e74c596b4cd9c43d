"""The shard map: which shard (one engine writer) owns each market, checked once when it is loaded.

A market belongs to exactly one shard; the listings of one instrument on several venues
(`BTC-USD`, `BTC-USD.OKX`) share a shard, so a smart order splits within one engine. Account-level
commands (deposits, withdrawals, assessments) go to the `home` shard. A shard's place in the map is its
index: its order and trade ids start at `index << ID_BITS` (`shard_configure`), so a cancel by order id
routes by the id alone and the shards' read models never collide. Shards are only ever appended.

Configured by `TRADEHALL_CLUSTER_SHARDS="A=BTC-USD,ETH-USD;B=SOL-USD"` or a TOML file
(`TRADEHALL_CLUSTER_SHARDS_FILE`, docs/cluster.md "Shards and routing").
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tradehall.domain.commands import Configure
from tradehall.domain.errors import Code, TradehallError

ID_BITS = 40
"""Ids per shard: 2**40; ids stay below 2**53 (exact in JSON) for up to 8192 shards."""
MAX_SHARDS = 2 ** (53 - ID_BITS)
_SHARD_NAME = re.compile(r"[A-Za-z0-9_-]{1,64}")
_MARKET_NAME = re.compile(r"[A-Za-z0-9_.:/-]{1,64}")
_VENUE = re.compile(r"[A-Z0-9_]{1,16}")


class ShardMapError(ValueError):
    """The shard map's configuration is invalid (the message says where)."""


class UnknownMarketError(TradehallError):
    """A command names a market no shard owns: 404 `not_found` at the gateway."""

    def __init__(self, market: str) -> None:
        super().__init__(
            Code.NOT_FOUND, f"market {market} is in no shard of the cluster (TRADEHALL_CLUSTER_SHARDS)"
        )


def instrument_key(symbol: str) -> str:
    """The instrument a market symbol lists: `BTC-USD` for `BTC-USD.OKX` (a venue suffix), else itself."""
    head, dot, venue = symbol.rpartition(".")
    return head if dot and head and _VENUE.fullmatch(venue) else symbol


@dataclass(frozen=True, slots=True)
class ShardMap:
    """`shards`: shard name -> its markets, in configuration order (the order is the id range)."""

    shards: Mapping[str, frozenset[str]]
    home: str
    _owner: dict[str, str] = field(init=False, repr=False, compare=False)
    _instruments: dict[str, str] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.shards:
            raise ShardMapError("the cluster has no shards")
        if len(self.shards) > MAX_SHARDS:
            raise ShardMapError(f"at most {MAX_SHARDS} shards")
        owner: dict[str, str] = {}
        instruments: dict[str, str] = {}
        for name, markets in self.shards.items():
            if not _SHARD_NAME.fullmatch(name):
                raise ShardMapError(f"shard name {name!r}: 1 to 64 letters, digits, '-' or '_'")
            if not markets:
                raise ShardMapError(f"shard {name} has no markets")
            for market in sorted(markets):
                if not _MARKET_NAME.fullmatch(market):
                    raise ShardMapError(f"shard {name}: {market!r} is not a market symbol")
                if market in owner:
                    raise ShardMapError(
                        f"market {market} is in shards {owner[market]} and {name}: "
                        "a market belongs to exactly one shard"
                    )
                owner[market] = name
                instrument = instrument_key(market)
                other = instruments.setdefault(instrument, name)
                if other != name:
                    raise ShardMapError(
                        f"instrument {instrument} is listed in shards {other} and {name}: "
                        "an instrument's venues share one shard (smart orders split within one engine)"
                    )
        if self.home not in self.shards:
            raise ShardMapError(f"home shard {self.home!r} is not one of {list(self.shards)}")
        object.__setattr__(self, "_owner", owner)
        object.__setattr__(self, "_instruments", instruments)

    # --- building ----------------------------------------------------------------------------

    @classmethod
    def of(cls, shards: Mapping[str, Sequence[str]], home: str | None = None) -> ShardMap:
        frozen = {name: frozenset(markets) for name, markets in shards.items()}
        for name, markets in shards.items():
            if len(frozenset(markets)) != len(markets):
                raise ShardMapError(f"shard {name} names a market twice")
        return cls(frozen, home if home is not None else next(iter(shards), ""))

    @classmethod
    def parse(cls, text: str, home: str | None = None) -> ShardMap:
        """`A=BTC-USD,ETH-USD;B=SOL-USD` (spaces allowed around names)."""
        shards: dict[str, list[str]] = {}
        for part in text.split(";"):
            if not part.strip():
                continue
            name, equals, markets = part.partition("=")
            name = name.strip()
            if not equals:
                raise ShardMapError(f"{part.strip()!r}: a shard is NAME=MARKET,MARKET,...")
            if name in shards:
                raise ShardMapError(f"shard {name} is named twice")
            shards[name] = [m.strip() for m in markets.split(",") if m.strip()]
        return cls.of(shards, home)

    @classmethod
    def load(cls, path: Path, home: str | None = None) -> ShardMap:
        """A TOML file: `home_shard = "A"` (optional) and a `[shards]` table of name = [markets]."""
        try:
            with path.open("rb") as handle:
                document: dict[str, Any] = tomllib.load(handle)
        except (OSError, tomllib.TOMLDecodeError) as error:
            raise ShardMapError(f"{path}: {error}") from None
        table = document.get("shards")
        if not isinstance(table, dict) or not all(
            isinstance(v, list) and all(isinstance(m, str) for m in v) for v in table.values()
        ):
            raise ShardMapError(f"{path}: a [shards] table of name = [market, ...] is needed")
        file_home = document.get("home_shard")
        if file_home is not None and not isinstance(file_home, str):
            raise ShardMapError(f"{path}: home_shard is a shard name")
        return cls.of(table, home if home is not None else file_home)

    # --- lookups -----------------------------------------------------------------------------

    @property
    def names(self) -> list[str]:
        return list(self.shards)

    def shard_of(self, market: str) -> str:
        shard = self._owner.get(market)
        if shard is None:
            raise UnknownMarketError(market)
        return shard

    def shard_of_instrument(self, instrument: str) -> str:
        """The shard listing `instrument` (for a smart order's `instrument`)."""
        shard = self._instruments.get(instrument_key(instrument))
        if shard is None:
            raise UnknownMarketError(instrument)
        return shard

    def index(self, shard: str) -> int:
        return list(self.shards).index(shard)

    def id_base(self, shard: str) -> int:
        return self.index(shard) << ID_BITS

    def shard_of_id(self, order_id: int) -> str:
        """The shard that gave an order (or trade) id; 404 for an id outside every shard's range."""
        names = list(self.shards)
        index = order_id >> ID_BITS
        if order_id <= 0 or index >= len(names):
            raise TradehallError(Code.NOT_FOUND, f"order {order_id} not found")
        return names[index]


def shard_configure(shard_map: ShardMap, shard: str) -> Configure:
    """The journaled command that puts a shard's engine in its id range (a no-op when it already is):
    a shard's leader submits it before serving."""
    return Configure(id_base=shard_map.id_base(shard))


def shard_map_of(shards: str | None, shards_file: Path | None, home: str | None) -> ShardMap | None:
    """The settings' shard map: None when neither is set (one machine); both set is an error."""
    if shards and shards_file is not None:
        raise ShardMapError("set TRADEHALL_CLUSTER_SHARDS or TRADEHALL_CLUSTER_SHARDS_FILE, not both")
    if shards_file is not None:
        return ShardMap.load(shards_file, home)
    if shards:
        return ShardMap.parse(shards, home)
    return None
