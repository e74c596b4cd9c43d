"""The engine's configuration from the service's settings, and the command that applies it.

Engine settings travel as a journaled `Configure` command (never as constructor arguments of a
restored engine), so a replay meets them at the same point in the command stream as the original run.
"""

from __future__ import annotations

import tomllib

import msgspec

from tradehall.domain.commands import Configure
from tradehall.domain.tiers import DEFAULT_TIERS, TierSpec
from tradehall.engine import EngineConfig
from tradehall.service.settings import Settings


def load_tiers(settings: Settings) -> dict[str, TierSpec]:
    """Tiers from `assessment_tiers_file` ([tiers.<name>] tables), or the shipped examples."""
    if settings.assessment_tiers_file is None:
        return dict(DEFAULT_TIERS)
    with settings.assessment_tiers_file.open("rb") as handle:
        document = tomllib.load(handle)
    tables = document.get("tiers", {})
    return {
        name: msgspec.convert({"name": name, **fields}, TierSpec, strict=False)
        for name, fields in tables.items()
    }


def configure_command(settings: Settings, current: EngineConfig) -> Configure | None:
    """The `Configure` that brings the engine to the settings, or None when it already matches."""
    tiers = load_tiers(settings)
    quote_max_age_ms = int(settings.quote_max_age_seconds * 1000)
    if (
        tiers == current.tiers
        and quote_max_age_ms == current.quote_max_age_ms
        and settings.max_open_orders == current.max_open_orders
    ):
        return None
    return Configure(tiers=tiers, quote_max_age_ms=quote_max_age_ms, max_open_orders=settings.max_open_orders)
