"""WebSocket and REST agree, against a real server: every channel's data is the REST object.

Each test takes a WebSocket message's `data` and the REST answer fetched right after it, with nothing
happening in between, and demands equal dicts: an `orders` update is `GET /orders/{id}` through
place, partial fill, amend and cancel; an `account` snapshot and update is `GET /accounts/{id}`
(after a trade, and when an assessment fails); `positions` and `fills` are items of `GET /positions`
and `GET /trades`; `candles:` lists oldest first and equals `GET /markets/{s}/candles`; `trades:` and
`ticker:` equal their REST answers. The same failure has the same code on both transports.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.client import ApiError, AsyncClient, Client, Stream
from tradehall.service.clock import ManualClock

Message = dict[str, Any]

TIERS = (
    '[tiers.ws-100k]\nstarting_balance = "100000"\nmax_daily_loss = "0.01"\n'
    'max_total_loss = "0.10"\nprofit_target = "0.01"\n'
)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("ws-rest")) as running:
        create_demo_markets(running.admin())
        yield running


async def until(stream: Stream, matches: Callable[[Message], bool], timeout: float = 10.0) -> Message:
    """The first message that `matches`, within a bounded time (the others are skipped)."""
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no matching message")
        message = await stream.next(left)
        if matches(message):
            return message


def order_update(order_id: str, event: str) -> Callable[[Message], bool]:
    def matches(message: Message) -> bool:
        return (
            message.get("channel") == "orders"
            and message.get("event") == event
            and message["data"]["id"] == order_id
        )

    return matches


def on(channel: str, kind: str = "update") -> Callable[[Message], bool]:
    return lambda message: message.get("channel") == channel and message.get("type") == kind


# ---- the same failure, the same code --------------------------------------------------------------


async def test_cancelling_an_unknown_order_is_not_found_on_both(server: Server) -> None:
    trader, _ = server.trader()
    with pytest.raises(ApiError) as rest:
        trader.cancel_order("987654321")
    assert (rest.value.status, rest.value.code) == (404, "not_found")
    async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
        with pytest.raises(ApiError) as ws:
            await stream.cancel_order("987654321")
    assert ws.value.code == "not_found"


async def test_a_refused_order_carries_the_same_reject_reason_on_both(server: Server) -> None:
    trader, account_id = server.trader()
    maker, maker_account = server.trader()
    resting = maker.place_order(maker_account, "BTC-PERP", "sell", "0.01", "50000")
    crossing = {"market": "BTC-PERP", "side": "buy", "type": "limit", "quantity": "0.01", "price": "50000"}
    try:
        with pytest.raises(ApiError) as rest:
            trader.place_order(account_id, "BTC-PERP", "buy", "0.01", "50000", post_only=True)
        async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
            with pytest.raises(ApiError) as ws:
                await stream.place_order(account_id=account_id, post_only=True, **crossing)
    finally:
        maker.cancel_order(resting["id"])  # the other tests of this module share the book
    assert (rest.value.code, rest.value.body["reject_reason"]) == ("invalid_order", "post_only")
    assert (ws.value.code, ws.value.body["reject_reason"]) == ("invalid_order", "post_only")


# ---- orders ---------------------------------------------------------------------------------------


async def test_orders_updates_are_the_rest_order_through_place_partial_fill_amend_and_cancel(
    server: Server,
) -> None:
    trader, account_id = server.trader()
    maker, maker_account = server.trader()
    async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
        await stream.subscribe(["orders"])
        assert (await until(stream, on("orders", "snapshot")))["data"] == []

        placed = trader.place_order(account_id, "BTC-PERP", "buy", "0.02", "50000", client_order_id="agree-1")
        accepted = await until(stream, order_update(placed["id"], "OrderAccepted"))
        rest = trader.order(placed["id"])
        assert accepted["data"] == rest
        assert (rest["status"], rest["client_order_id"], rest["fills"]) == ("open", "agree-1", [])

        maker.place_order(maker_account, "BTC-PERP", "sell", "0.005", "50000")
        filled = await until(stream, order_update(placed["id"], "OrderFilled"))
        rest = trader.order(placed["id"])
        assert filled["data"] == rest
        assert (rest["status"], rest["filled_quantity"], rest["average_price"]) == (
            "partially_filled",
            "0.005",
            "50000",
        )
        assert [(f["price"], f["quantity"], f["liquidity"]) for f in rest["fills"]] == [
            ("50000", "0.005", "maker")
        ]

        trader.amend_order(placed["id"], quantity="0.015")
        amended = await until(stream, order_update(placed["id"], "OrderAmended"))
        rest = trader.order(placed["id"])
        assert amended["data"] == rest
        assert (rest["quantity"], rest["filled_quantity"]) == ("0.015", "0.005")
        assert rest["updated_at"] > filled["data"]["updated_at"]

        trader.cancel_order(placed["id"])
        cancelled = await until(stream, order_update(placed["id"], "OrderCancelled"))
        rest = trader.order(placed["id"])  # closed: from the read models now
        assert cancelled["data"] == rest
        assert (rest["status"], rest["cancel_reason"], rest["filled_quantity"]) == (
            "cancelled",
            "user",
            "0.005",
        )
        assert len(rest["fills"]) == 1


async def test_a_trailing_stops_updates_are_the_rest_order_with_its_watermark(server: Server) -> None:
    admin = server.admin()
    admin.create_market(
        symbol="TRAIL-PERP",
        kind="perp",
        base="TRAIL",
        quote="USD",
        tick_size="0.5",
        lot_size="0.001",
        max_leverage="10",
    )
    admin.set_price("TRAIL-PERP", "50000")  # the mark
    trader, account_id = server.trader()
    async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
        await stream.subscribe(["orders"])
        await until(stream, on("orders", "snapshot"))
        placed = trader.place_trailing_stop(
            account_id, "TRAIL-PERP", "sell", "0.01", trail_price="500", trigger="mark"
        )
        accepted = await until(stream, order_update(placed["id"], "OrderAccepted"))
        assert accepted["data"] == trader.order(placed["id"])
        assert (accepted["data"]["hwm"], accepted["data"]["stop_price"]) == ("50000", "49500")

        admin.set_price("TRAIL-PERP", "51000")  # the watermark moves without an event of its own
        trader.amend_order(placed["id"], trail_percent="1")
        amended = await until(stream, order_update(placed["id"], "OrderAmended"))
        rest = trader.order(placed["id"])
        assert amended["data"] == rest
        assert (rest["hwm"], rest["stop_price"], rest["trail_percent"], rest["trail_price"]) == (
            "51000",
            "50490",
            "1",
            None,
        )

        admin.set_price("TRAIL-PERP", "50400")  # fires; nobody bids: the market sell ends unfilled
        cancelled = await until(stream, order_update(placed["id"], "OrderCancelled"))
        rest = trader.order(placed["id"])
        assert cancelled["data"] == rest
        assert (rest["status"], rest["cancel_reason"], rest["hwm"], rest["stop_price"]) == (
            "cancelled",
            "market_remainder",
            "51000",
            "50490",
        )


async def test_an_orders_snapshot_lists_open_orders_as_rest_shows_them_fills_included(server: Server) -> None:
    trader, account_id = server.trader()
    maker, maker_account = server.trader()
    first = trader.place_order(account_id, "BTC-PERP", "buy", "0.01", "30000")
    second = trader.place_order(account_id, "BTC-PERP", "buy", "0.004", "30500")
    maker.place_order(maker_account, "BTC-PERP", "sell", "0.001", "30500")
    assert trader.order(second["id"])["status"] == "partially_filled"
    async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
        await stream.subscribe(["orders"])
        snapshot = await until(stream, on("orders", "snapshot"))
        rest = [trader.order(second["id"]), trader.order(first["id"])]  # newest first
        assert snapshot["data"] == rest
        assert len(rest[0]["fills"]) == 1
    trader.cancel_all(account_id)


async def test_an_ioc_order_that_lives_inside_one_record_is_still_the_whole_rest_order(
    server: Server,
) -> None:
    trader, account_id = server.trader()
    maker, maker_account = server.trader()
    maker.place_order(maker_account, "BTC-PERP", "sell", "0.002", "52000")
    async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
        await stream.subscribe(["orders"])
        await until(stream, on("orders", "snapshot"))
        order = trader.place_order(account_id, "BTC-PERP", "buy", "0.003", "52000", time_in_force="ioc")
        events = []
        while not events or events[-1]["event"] != "OrderCancelled":
            events.append(await until(stream, lambda m: m.get("channel") == "orders"))
        rest = trader.order(order["id"])
    assert [m["event"] for m in events] == ["OrderAccepted", "OrderFilled", "OrderCancelled"]
    assert all(m["data"] == rest for m in events)  # one record: each update is the order as it ended
    assert (rest["status"], rest["cancel_reason"], rest["filled_quantity"]) == (
        "cancelled",
        "ioc_remainder",
        "0.002",
    )


async def test_a_key_bound_to_one_account_streams_only_that_accounts_objects(server: Server) -> None:
    trader, bound = server.trader()
    other = trader.create_account("USD", initial_balance="5000")["id"]
    key = trader.create_api_key("bound", account_id=bound)["api_key"]
    async with AsyncClient(server.url, api_key=key).stream() as stream:
        await stream.subscribe(["account", "orders"])
        assert [a["id"] for a in (await until(stream, on("account", "snapshot")))["data"]] == [bound]
        await until(stream, on("orders", "snapshot"))
        hidden = trader.place_order(other, "BTC-PERP", "buy", "0.001", "20000")
        shown = trader.place_order(bound, "BTC-PERP", "buy", "0.001", "20000")
        first = await until(stream, on("orders"))
        assert first["data"] == trader.order(shown["id"])  # the other account's order never came
        assert hidden["id"] != shown["id"]
    trader.cancel_all(bound)
    trader.cancel_all(other)


# ---- account, positions, fills ---------------------------------------------------------------------


async def test_account_positions_and_fills_after_a_trade_are_the_rest_objects(server: Server) -> None:
    trader, account_id = server.trader()
    maker, maker_account = server.trader()
    async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
        await stream.subscribe(["account", "positions", "fills"])
        snapshot = await until(stream, on("account", "snapshot"))
        assert snapshot["data"] == [trader.account(account_id)]
        assert (await until(stream, on("positions", "snapshot")))["data"] == []

        maker.place_order(maker_account, "BTC-PERP", "sell", "0.01", "60000")
        order = trader.place_order(account_id, "BTC-PERP", "buy", "0.01", "60000")
        fill = await until(stream, on("fills"))
        position = await until(stream, on("positions"))
        account = await until(stream, on("account"))
        assert fill["sequence"] == position["sequence"] == account["sequence"]  # one record, in order

        assert account["data"] == trader.account(account_id)
        assert [position["data"]] == trader.positions(account_id)["items"]
        (rest_fill,) = trader.trades(account_id)["items"]
        assert fill["data"] == rest_fill
        assert (rest_fill["order_id"], rest_fill["liquidity"], rest_fill["price"]) == (
            order["id"],
            "taker",
            "60000",
        )
        assert (position["data"]["side"], position["data"]["quantity"]) == ("long", "0.01")
        assert account["data"]["balance"] == "100000.00"  # the demo perp has no fees


async def test_a_failed_assessment_pushes_its_account_with_the_status_and_its_reason(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    tiers = data_dir / "tiers.toml"
    tiers.write_text(TIERS)
    with running_server(data_dir, assessment_tiers_file=tiers) as server:
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
        maker, maker_account = server.trader(funded="10000000")
        trader, _ = server.trader()
        assessment = trader.create_account("USD", kind="assessment", tier="ws-100k")["id"]
        maker.place_order(maker_account, "BTC-PERP", "sell", "1.53", "64000")
        assert trader.place_order(assessment, "BTC-PERP", "buy", "1.53", "64000")["status"] == "filled"
        maker.place_order(maker_account, "BTC-PERP", "buy", "2", "63900")
        maker.place_order(maker_account, "BTC-PERP", "sell", "1", "64100")
        async with AsyncClient(server.url, token=trader.auth_token).stream() as stream:
            await stream.subscribe(["account"])
            snapshot = await until(stream, on("account", "snapshot"))
            (before,) = [a for a in snapshot["data"] if a["id"] == assessment]
            assert before == trader.account(assessment)
            assert before["status"] == "active"
            assert before["rules"]["floors"] == {"daily": "99000.00", "total": "90000.00"}

            admin.set_price("BTC-PERP", "63300")  # equity 98,880.04 is below the daily floor
            failed = await until(
                stream,
                lambda m: (
                    on("account")(m) and m["data"]["id"] == assessment and m["data"]["status"] == "failed"
                ),
            )
            rest = trader.account(assessment)
            assert failed["data"] == rest
            reason = rest["status_reason"]
            assert (reason["rule"], reason["value"], reason["limit"]) == (
                "max_daily_loss",
                "98880.04",
                "99000.00",
            )


# ---- public channels -------------------------------------------------------------------------------


async def test_trades_and_ticker_updates_are_the_rest_trade_and_ticker(server: Server) -> None:
    seller, seller_account = server.trader()
    buyer, buyer_account = server.trader()
    server.admin().deposit(seller_account, "1", "BTC")
    anonymous = Client(server.url)
    async with AsyncClient(server.url).stream() as stream:
        await stream.subscribe(["trades:BTC-USD", "ticker:BTC-USD"])
        ticker = await until(stream, on("ticker:BTC-USD", "snapshot"))
        assert ticker["data"] == anonymous.ticker("BTC-USD")
        seller.place_order(seller_account, "BTC-USD", "sell", "0.1", "71000")
        buyer.place_order(buyer_account, "BTC-USD", "buy", "0.1", "71000")
        trade = await until(stream, on("trades:BTC-USD"))
        ticker = await until(stream, lambda m: on("ticker:BTC-USD")(m) and m["sequence"] == trade["sequence"])
        assert trade["data"] == anonymous.market_trades("BTC-USD")["items"][0]
        assert ticker["data"] == anonymous.ticker("BTC-USD")
        assert (ticker["data"]["last"], trade["data"]["price"]) == ("71000", "71000")


def _minute_clock() -> ManualClock:
    """Two hours ago, 5 s into a minute: each trade below lands in the minute it is put in."""
    start = time.time_ns() - 2 * 3600 * 10**9
    return ManualClock(start - start % (60 * 10**9) + 5 * 10**9, step_ns=1_000)


async def test_candles_are_oldest_first_on_both_and_equal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = _minute_clock()
    monkeypatch.setattr("tradehall.service.runner.SystemClock", lambda: clock)
    with running_server(tmp_path) as server:
        create_demo_markets(server.admin())
        seller, seller_account = server.trader()
        buyer, buyer_account = server.trader()

        def trade(price: str) -> None:
            seller.place_order(seller_account, "BTC-PERP", "sell", "0.001", price)
            buyer.place_order(buyer_account, "BTC-PERP", "buy", "0.001", price)

        for price in ("41000", "41500", "41250"):  # one trade in each of three minutes
            trade(price)
            clock.advance(60 * 10**9)
        anonymous = Client(server.url)
        async with AsyncClient(server.url).stream() as stream:
            await stream.subscribe(["candles:BTC-PERP:1m"])
            snapshot = await until(stream, on("candles:BTC-PERP:1m", "snapshot"))
            rest = anonymous.candles("BTC-PERP", "1m")["items"]
            assert snapshot["data"] == rest
            assert [c["close"] for c in rest] == ["41000", "41500", "41250"]
            starts = [c["t"] for c in rest]
            assert starts == sorted(starts) and len(set(starts)) == 3

            trade("41100")  # the fourth minute
            trade("41300")
            update = await until(
                stream, lambda m: on("candles:BTC-PERP:1m")(m) and m["data"]["close"] == "41300"
            )
            latest = anonymous.candles("BTC-PERP", "1m")["items"]
            assert update["data"] == latest[-1]
            assert (latest[-1]["open"], latest[-1]["high"], latest[-1]["volume"]) == (
                "41100",
                "41300",
                "0.002",
            )
            assert [c["t"] for c in latest[:3]] == starts
