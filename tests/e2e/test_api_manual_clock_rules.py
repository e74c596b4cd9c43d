"""Every time-based rule through the API on a server whose clock only `POST /admin/clock` moves.

DAY expiry at the UTC midnight, funding at each interval, an assessment's daily reset and its
minimum trading days, and candles split at hour and day boundaries: each is checked one second
before and at its moment, far from today's date (no test waits or depends on the wall clock).
GTD expiry, one-minute candles and the ticker's 24 h window are in `test_api_manual_clock.py`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from tests.e2e.test_api_harness import running_server
from tests.e2e.test_api_manual_clock import eventually
from tradehall.client import Client


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def far_midnight(days: int) -> datetime:
    """A UTC midnight `days` days from today: the tests' time is never today's."""
    return (datetime.now(UTC) + timedelta(days=days)).replace(hour=0, minute=0, second=0, microsecond=0)


def spot(admin: Client, symbol: str) -> None:
    base = symbol.split("-")[0]
    admin.create_market(symbol=symbol, kind="spot", base=base, quote="USD", tick_size="1", lot_size="1")


def test_a_day_order_expires_at_the_utc_midnight_after_it_was_placed(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", clock="manual", clock_tick_seconds=0) as server:
        admin = server.admin()
        spot(admin, "DAY-USD")
        midnight = far_midnight(90)
        admin.move_clock(set_to=_rfc3339(midnight - timedelta(seconds=10)))
        trader, account_id = server.trader()
        order = trader.place_order(account_id, "DAY-USD", "buy", "1", "10", time_in_force="day")
        assert order["status"] == "open"
        admin.move_clock(advance_seconds=9)
        assert trader.order(str(order["id"]))["status"] == "open"
        assert trader.account(account_id)["available"] == "99990.00"
        admin.move_clock(advance_seconds=1)
        eventually(lambda: trader.order(str(order["id"]))["status"], "expired")
        assert trader.account(account_id)["available"] == "100000.00"  # the hold is released


def test_funding_is_paid_at_each_interval_of_the_manual_clock(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", clock="manual", clock_tick_seconds=0) as server:
        admin = server.admin()
        hour = far_midnight(60) + timedelta(hours=5)
        admin.move_clock(set_to=_rfc3339(hour + timedelta(minutes=30)))
        admin.create_market(
            symbol="FND-PERP",
            kind="perp",
            base="FND",
            quote="USD",
            tick_size="1",
            lot_size="1",
            max_leverage="10",
            maker_fee="0",
            taker_fee="0",
            funding_interval_seconds=3600,
            funding_rate="0.0001",
        )
        (long, long_id), (short, short_id) = server.trader("1000"), server.trader("1000")
        short.place_order(short_id, "FND-PERP", "sell", "10", "100")
        assert long.place_order(long_id, "FND-PERP", "buy", "10", "100")["status"] == "filled"
        admin.set_price("FND-PERP", "100")
        admin.move_clock(advance_seconds=0)  # the engine schedules the next payment at the hour

        def balances() -> tuple[str, str]:
            return long.account(long_id)["balance"], short.account(short_id)["balance"]

        admin.move_clock(set_to=_rfc3339(hour + timedelta(hours=1) - timedelta(seconds=1)))
        assert balances() == ("1000.00", "1000.00")
        admin.move_clock(advance_seconds=1)  # the hour: 0.0001 x 10 x 100 = 0.10 from the long to the short
        assert balances() == ("999.90", "1000.10")
        admin.move_clock(advance_seconds=3599)
        assert balances() == ("999.90", "1000.10")
        admin.move_clock(advance_seconds=1)
        assert balances() == ("999.80", "1000.20")


TIERS = (
    '[tiers.clock-10k]\nstarting_balance = "10000"\nmax_daily_loss = "0.05"\nmax_total_loss = "0.10"\n'
    'profit_target = "0.01"\nmin_trading_days = 2\ndaily_reset_time = "00:00"\ntimezone = "UTC"\n'
)


def test_an_assessment_resets_its_daily_floor_at_midnight_and_passes_only_after_two_trading_days(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    tiers = data_dir / "tiers.toml"
    tiers.write_text(TIERS)
    manual = {"clock": "manual", "clock_tick_seconds": 0}
    with running_server(data_dir, assessment_tiers_file=tiers, **manual) as server:
        admin = server.admin()
        midnight = far_midnight(120)
        admin.move_clock(set_to=_rfc3339(midnight - timedelta(hours=12)))
        admin.create_market(
            symbol="ASM-PERP",
            kind="perp",
            base="ASM",
            quote="USD",
            tick_size="1",
            lot_size="1",
            max_leverage="10",
            maker_fee="0",
            taker_fee="0",
        )
        maker, maker_id = server.trader("1000000")
        trader, _ = server.trader()
        assessment = trader.create_account("USD", kind="assessment", tier="clock-10k")["id"]

        def trade(side: str, quantity: str, price: str) -> None:
            maker.place_order(maker_id, "ASM-PERP", "sell" if side == "buy" else "buy", quantity, price)
            assert trader.place_order(assessment, "ASM-PERP", side, quantity, price)["status"] == "filled"

        trade("buy", "10", "100")
        admin.set_price("ASM-PERP", "111")
        trade("sell", "5", "111")  # realises 55.00; equity 10,110 is above the 10,100 target...
        account = trader.account(assessment)
        assert account["status"] == "active"  # ...but only one trading day so far
        assert (account["equity"], account["rules"]["progress"]["trading_days"]) == ("10110.00", 1)
        assert account["rules"]["floors"]["daily"] == "9500.00"  # the day started at 10,000

        admin.move_clock(set_to=_rfc3339(midnight - timedelta(seconds=1)))
        assert trader.account(assessment)["rules"]["floors"]["daily"] == "9500.00"
        admin.move_clock(advance_seconds=1)  # the reset: the day starts at the balance, 10,055
        account = trader.account(assessment)
        assert (account["rules"]["floors"]["daily"], account["status"]) == ("9555.00", "active")

        trade("buy", "1", "111")  # the second trading day: the target is met and now counts
        account = trader.account(assessment)
        assert (account["status"], account["rules"]["progress"]["trading_days"]) == ("passed", 2)
        assert account["status_reason"]["rule"] == "profit_target"


def test_candles_split_at_the_hour_and_the_day_of_the_manual_clock(tmp_path: Path) -> None:
    with running_server(tmp_path / "data", clock="manual", clock_tick_seconds=0) as server:
        admin = server.admin()
        spot(admin, "BAR-USD")
        midnight = far_midnight(45)
        admin.move_clock(set_to=_rfc3339(midnight - timedelta(seconds=1)))
        (buyer, buyer_id), (seller, seller_id) = server.trader(), server.trader()
        admin.deposit(seller_id, "10", currency="BAR")

        def trade(quantity: str, price: str) -> None:
            seller.place_order(seller_id, "BAR-USD", "sell", quantity, price)
            assert buyer.place_order(buyer_id, "BAR-USD", "buy", quantity, price)["status"] == "filled"

        trade("1", "100")  # 23:59:59, the last second of the day
        admin.move_clock(advance_seconds=1)
        trade("2", "105")  # 00:00:00, the next day's first bar
        admin.move_clock(advance_seconds=3599)
        trade("3", "103")  # 00:59:59, still the first hour
        for interval, starts in (
            ("1d", [midnight - timedelta(days=1), midnight]),
            ("1h", [midnight - timedelta(hours=1), midnight]),
        ):
            bars = sorted(admin.candles("BAR-USD", interval)["items"], key=lambda bar: bar["t"])
            assert [(b["t"], b["open"], b["close"], b["volume"]) for b in bars] == [
                (_rfc3339(starts[0]), "100", "100", "1"),
                (_rfc3339(starts[1]), "105", "103", "5"),
            ], interval
