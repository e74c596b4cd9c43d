"""The demo's data without a server: its simulated-feed configuration, saved state and quoting."""

from __future__ import annotations

import random
from decimal import Decimal
from pathlib import Path

from tradehall.marketdata.config import MarketDataConfig
from tradehall.marketdata.router import CommandKind
from tradehall.service.demo import (
    DEMO_MARKETS,
    DemoState,
    MarketBot,
    demo_marketdata_config,
    demo_settings,
    feed_config_path,
    market_bots,
    state_path,
)
from tradehall.service.settings import Settings

SYMBOLS = ["BTC-USD", "BTC-PERP", "ETH-PERP", "FED-CUT-DEC"]


def test_the_feed_config_walks_every_demo_market_and_routes_it_as_its_mark() -> None:
    config = demo_marketdata_config(42, 0.25)
    assert [item.name for item in config.simulated] == SYMBOLS
    assert [item.start for item in config.simulated] == [m.start for m in DEMO_MARKETS]
    assert config.simulated_seed == 42 and config.simulated_interval == 0.25
    assert [(r.market, r.sources, r.commands) for r in config.routes] == [
        (s, [f"simulated:{s}"], CommandKind.MARK) for s in SYMBOLS
    ]
    binary = config.simulated[3]
    assert (binary.floor, binary.ceiling) == (Decimal("0.03"), Decimal("0.97"))


def test_the_walk_starts_from_saved_marks_that_are_usable_prices() -> None:
    saved = {"BTC-USD": "65000.5", "BTC-PERP": "64000.3", "ETH-PERP": "-5", "FED-CUT-DEC": "0.99"}
    starts = {i.name: i.start for i in demo_marketdata_config(7, 1.0, saved).simulated}
    # on the tick: kept; off the tick, not positive, beyond a binary's ceiling: the defaults
    assert starts == {
        "BTC-USD": Decimal("65000.5"),
        "BTC-PERP": Decimal("64010"),
        "ETH-PERP": Decimal("3200"),
        "FED-CUT-DEC": Decimal("0.55"),
    }
    garbage = {i.name: i.start for i in demo_marketdata_config(7, 1.0, {"BTC-USD": "NaN"}).simulated}
    assert garbage["BTC-USD"] == Decimal("64000")


def test_demo_settings_write_the_feed_config_and_keep_a_configured_one(tmp_path: Path) -> None:
    DemoState(marks={"ETH-PERP": "3100.05"}).save(state_path(tmp_path))
    settings = demo_settings(Settings(data_dir=tmp_path), seed=3, feed_interval=0.5)
    assert settings.rate_limit_per_second == 0.0
    assert settings.marketdata_config == feed_config_path(tmp_path)
    written = MarketDataConfig.load(feed_config_path(tmp_path))
    assert written == demo_marketdata_config(3, 0.5, {"ETH-PERP": "3100.05"})

    own = tmp_path / "mine.toml"
    kept = demo_settings(Settings(data_dir=tmp_path / "other", marketdata_config=own))
    assert kept.marketdata_config == own
    assert not feed_config_path(tmp_path / "other").exists()


def test_the_state_file_round_trips_privately_and_a_broken_one_is_a_fresh_start(tmp_path: Path) -> None:
    path = state_path(tmp_path)
    assert DemoState.load(path) == DemoState()
    DemoState("acc_1", "th_secret", {"BTC-USD": "1"}).save(path)
    assert DemoState.load(path) == DemoState("acc_1", "th_secret", {"BTC-USD": "1"})
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text('["not", "an", "object"]')
    assert DemoState.load(path) == DemoState()
    path.write_text("{broken")
    assert DemoState.load(path) == DemoState()


def test_the_maker_quotes_around_the_mark_on_the_tick_and_inside_a_binary_range() -> None:
    binary = MarketBot(DEMO_MARKETS[3], random.Random(1))
    plan = binary.plan(Decimal("0.98"))
    prices = [Decimal(q.price) for q in plan.quotes]
    assert prices and all(Decimal(0) < p < Decimal(1) for p in prices)
    # one tick apart; the asks beyond 0.99 would be at 1 or more and are left out
    assert [p for q, p in zip(plan.quotes, prices, strict=True) if q.side == "sell"] == [Decimal("0.99")]
    assert len(plan.quotes) == 6
    perp = MarketBot(DEMO_MARKETS[1], random.Random(1))
    plan = perp.plan(Decimal("64000"))
    bids = [Decimal(q.price) for q in plan.quotes if q.side == "buy"]
    asks = [Decimal(q.price) for q in plan.quotes if q.side == "sell"]
    assert bids == [Decimal("63998"), Decimal("63996"), Decimal("63994"), Decimal("63992"), Decimal("63990")]
    assert asks == [Decimal("64002"), Decimal("64004"), Decimal("64006"), Decimal("64008"), Decimal("64010")]


def test_a_seed_replays_the_same_bot_decisions() -> None:
    def decisions(seed: int) -> list[object]:
        return [bot.plan(bot.market.start) for bot in market_bots(seed) for _ in range(3)]

    assert decisions(5) == decisions(5)
    assert decisions(5) != decisions(6)
