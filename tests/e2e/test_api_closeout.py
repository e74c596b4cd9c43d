"""Through a real server: an admin mark cannot decide an assessment at a price nobody could trade.

The issue's reproduction: a long 1.53 BTC assessment on the book perp failed when an admin mark was
posted below the bid; it was closed at the mark and a public trade at that price appeared in the
market's trades and candles. Now a mark far from the book is refused (400), a mark inside the band
still ends the account, the close-out trades against the book within 5 %, the rest is taken over by
the insurance fund at the mark (no trade), and the account says why, also after a restart.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.test_api_harness import Server, running_server
from tradehall.client import ApiError, Client

TIERS = (
    '[tiers.closeout-100k]\nstarting_balance = "100000"\nmax_daily_loss = "0.01"\n'
    'max_total_loss = "0.10"\nprofit_target = "0.01"\n'
)


PASSWORD = "closeout-trader-password"


def error_of(call: object, *args: object, **kwargs: object) -> ApiError:
    with pytest.raises(ApiError) as caught:
        call(*args, **kwargs)  # type: ignore[operator]
    return caught.value


def build(server: Server) -> tuple[Client, str, Client, str]:
    admin = server.admin()
    admin.create_market(
        symbol="BTC-PERP",
        kind="perp",
        base="BTC",
        quote="USD",
        tick_size="0.5",
        lot_size="0.01",
        max_leverage="100",
        maker_fee="0",
        taker_fee="0.0005",
    )
    maker, maker_id = server.trader(funded="10000000")
    Client(server.url).register("closeout-trader", PASSWORD)
    trader = Client(server.url).login("closeout-trader", PASSWORD)
    assessment = trader.create_account("USD", kind="assessment", tier="closeout-100k")["id"]
    assert maker.place_order(maker_id, "BTC-PERP", "sell", "1.53", "64000")["status"] == "open"
    assert trader.place_order(assessment, "BTC-PERP", "buy", "1.53", "64000")["status"] == "filled"
    for side, quantity, price in (
        ("buy", "0.5", "63900"),
        ("buy", "0.5", "63000"),
        ("buy", "1", "60000"),  # beyond 5 % of the best bid: the close-out does not reach it
        ("sell", "1", "64100"),
    ):
        maker.place_order(maker_id, "BTC-PERP", side, quantity, price)
    return admin, assessment, trader, maker_id


def test_an_injected_mark_cannot_print_a_trade_and_the_assessment_says_why(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    tiers = data_dir / "tiers.toml"
    tiers.write_text(TIERS)
    with running_server(data_dir, assessment_tiers_file=tiers) as server:
        admin, assessment, trader, _ = build(server)
        assert admin.market("BTC-PERP")["mark_band"] == "0.05"

        # 50,000 is far outside [63,900 x 0.95, 64,100 x 1.05] = [60,705, 67,305]: refused, nothing happens
        refused = error_of(admin.set_price, "BTC-PERP", "50000")
        assert (refused.status, refused.code) == (400, "invalid_request")
        assert (
            refused.detail
            == "mark 50000 is outside the band [60705, 67305]: 5 % beyond the book's bid and ask"
        )
        assert trader.account(assessment)["status"] == "active"

        # 63,300 is inside the band and below the daily floor: equity 98,880.04 < 99,000.00
        admin.set_price("BTC-PERP", "63300")
        account = trader.account(assessment)
        assert account["status"] == "failed"
        reason = account["status_reason"]
        assert (reason["rule"], reason["value"], reason["limit"]) == (
            "max_daily_loss",
            "98880.04",
            "99000.00",
        )
        assert reason["at"].endswith("Z")
        # 0.50 at 63,900 and 0.50 at 63,000 from the book (taker fee 31.73), 0.53 taken over at 63,300
        assert account["balance"] == "98998.31"  # 99,951.04 - 50.00 - 500.00 - 371.00 - 31.73
        assert account["equity"] == "98998.31"
        assert trader.positions(assessment)["items"] == []

        trades = admin.market_trades("BTC-PERP")["items"]
        assert [(t["price"], t["quantity"]) for t in trades] == [
            ("63000", "0.5"),
            ("63900", "0.5"),
            ("64000", "1.53"),
        ]
        candles = admin.candles("BTC-PERP", interval="1h")["items"]
        prices = {Decimal(c[k]) for c in candles for k in ("open", "high", "low", "close")}
        assert Decimal("63300") not in prices  # the mark never shows as a trade
        assert min(Decimal(c["low"]) for c in candles) == Decimal("63000")
        assert sum(Decimal(c["volume"]) for c in candles) == Decimal("2.53")

        engine = server.app.state.service.engine
        assert engine.markets["BTC-PERP"].positions["system:insurance"].quantity == 53
        assert all(total == 0 for total in engine.ledger.totals().values())

    with running_server(data_dir, assessment_tiers_file=tiers) as restarted:  # snapshot + journal replay
        trader = Client(restarted.url).login("closeout-trader", PASSWORD)
        again = trader.account(assessment)
        assert (again["status"], again["status_reason"]) == ("failed", reason)


def test_money_is_shown_in_the_currency_units_and_equity_values_spot_holdings(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        admin = server.admin()
        admin.create_market(
            symbol="BTC-USD",
            kind="spot",
            base="BTC",
            quote="USD",
            tick_size="0.01",
            lot_size="0.0001",
            maker_fee="0.01",
            taker_fee="0.002",
        )
        maker, maker_id = server.trader(funded="1000000")
        admin.deposit(maker_id, "10", currency="BTC")
        bid = maker.place_order(maker_id, "BTC-USD", "buy", "1", "64000")
        maker.place_order(maker_id, "BTC-USD", "sell", "1", "64010")

        poor, poor_id = server.trader(funded="2500")
        refused = error_of(poor.place_order, poor_id, "BTC-USD", "buy", "1", "3000")
        assert (refused.status, refused.code) == (422, "insufficient_balance")
        assert refused.detail == "the order needs 3,030.00 USD, 2,500.00 available"

        holder, holder_id = server.trader(funded="100000")
        admin.deposit(holder_id, "1", currency="BTC")
        assert holder.account(holder_id)["equity"] == "164005.00"  # 1 BTC at the mid 64,005.00
        sold = holder.place_order(holder_id, "BTC-USD", "sell", "0.5", type="market")
        assert (sold["status"], sold["fees"]) == ("filled", "64.00")
        account = holder.account(holder_id)
        assert (account["balance"], account["equity"]) == ("131936.00", "163936.00")  # not ~132k

        # fees read the same live (engine) and from history (read models)
        assert [f["fee"] for f in sold["fills"]] == ["64.00"]
        assert holder.order(str(sold["id"]))["fees"] == "64.00"
        assert [f["fee"] for f in holder.trades(holder_id)["items"]] == ["64.00"]
        assert maker.order(str(bid["id"]))["fees"] == "320.00"  # partly filled, still open: the engine
        resting = maker.place_order(maker_id, "BTC-USD", "buy", "0.1", "60000")
        assert resting["fees"] == "0.00"
        assert maker.cancel_order(str(resting["id"]))["fees"] == "0.00"
        assert maker.order(str(resting["id"]))["fees"] == "0.00"  # closed: from the read models
