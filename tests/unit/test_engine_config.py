"""Engine settings from the service's configuration travel as a journaled Configure command."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from tradehall.domain.tiers import DEFAULT_TIERS
from tradehall.engine import EngineConfig
from tradehall.service.engine_config import configure_command, load_tiers
from tradehall.service.settings import Settings


def test_default_settings_match_a_new_engine_and_need_no_command() -> None:
    assert configure_command(Settings(), EngineConfig()) is None


def test_a_tiers_file_becomes_one_configure_command(tmp_path: Path) -> None:
    path = tmp_path / "tiers.toml"
    path.write_text(
        '[tiers.starter]\nstarting_balance = "5000"\nprofit_target = "0.08"\nmax_daily_loss = "0.04"\n'
        'drawdown_mode = "eod_trailing"\nallowed_markets = ["BTC-PERP"]\n'
    )
    settings = Settings(assessment_tiers_file=path, max_open_orders=50)
    tiers = load_tiers(settings)
    assert list(tiers) == ["starter"]
    tier = tiers["starter"]
    assert (tier.starting_balance, tier.profit_target, tier.allowed_markets) == (
        Decimal("5000"),
        Decimal("0.08"),
        ("BTC-PERP",),
    )
    command = configure_command(settings, EngineConfig())
    assert command is not None and command.tiers == tiers and command.max_open_orders == 50
    assert load_tiers(Settings()) == DEFAULT_TIERS
