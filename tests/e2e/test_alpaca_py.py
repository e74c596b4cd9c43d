"""The real alpaca-py SDK against a real tradehall server's Alpaca surface (`url_override`)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from uuid import UUID

import httpx
import pytest
from alpaca.common.exceptions import APIError
from alpaca.data.historical.crypto import CryptoHistoricalDataClient
from alpaca.data.requests import (
    CryptoBarsRequest,
    CryptoLatestOrderbookRequest,
    CryptoLatestQuoteRequest,
)
from alpaca.data.timeframe import TimeFrame, TimeFrameUnit
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import AssetClass, OrderClass, OrderSide, OrderStatus, QueryOrderStatus, TimeInForce
from alpaca.trading.requests import (
    ClosePositionRequest,
    GetAssetsRequest,
    GetOrdersRequest,
    LimitOrderRequest,
    MarketOrderRequest,
    ReplaceOrderRequest,
    StopLimitOrderRequest,
    StopLossRequest,
    StopOrderRequest,
    TakeProfitRequest,
    TrailingStopOrderRequest,
)

from tests.e2e.alpaca_support import AlpacaTrader, alpaca_trader, seed_book
from tests.e2e.test_api_harness import Server, running_server
from tradehall.api.alpaca.ids import order_uuid


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("alpaca-py")) as running:
        seed_book(running)
        yield running


def trading(trader: AlpacaTrader) -> TradingClient:
    return TradingClient(trader.key_id, trader.secret, url_override=trader.base)


def native_order_id(alpaca_id: UUID) -> str:
    number = int(alpaca_id) & ((1 << 62) - 1)
    assert order_uuid(number) == str(alpaca_id)
    return str(number)


def test_account_clock_and_assets(server: Server) -> None:
    trader = alpaca_trader(server)
    client = trading(trader)
    account = client.get_account()
    native = trader.client.account(trader.account_id)
    assert account.account_number == trader.account_id
    assert account.currency == "USD"
    assert account.cash == native["available"] == "100000.00"
    assert account.equity == native["equity"] == "100000.00"
    assert account.status.value == "ACTIVE"
    clock = client.get_clock()
    assert clock.is_open is True
    assets = client.get_all_assets(GetAssetsRequest(asset_class=AssetClass.CRYPTO))
    # spot markets only: the perp and the binary market of the demo set are not Alpaca assets
    assert [asset.symbol for asset in assets] == ["BTC/USD"]
    btc = client.get_asset("BTC/USD")
    assert btc.asset_class is AssetClass.CRYPTO
    assert btc.price_increment == 0.5 and btc.min_trade_increment == 0.001
    assert client.get_asset(str(btc.id)).symbol == "BTC/USD"


def test_market_limit_stop_orders_list_replace_cancel(server: Server) -> None:
    trader = alpaca_trader(server)
    client = trading(trader)
    bought = client.submit_order(
        MarketOrderRequest(symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )
    assert bought.status is OrderStatus.FILLED
    assert bought.filled_qty == "0.01" and bought.filled_avg_price == "50000"
    native = trader.client.order(native_order_id(bought.id))
    assert native["status"] == "filled" and native["fees"] == "0.50"
    assert [fill["price"] for fill in native["fills"]] == ["50000"]

    resting = client.submit_order(
        LimitOrderRequest(
            symbol="BTC/USD",
            qty="0.02",
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            limit_price=45000,
            client_order_id="alpaca-limit-1",
        )
    )
    assert resting.status is OrderStatus.NEW and resting.limit_price == "45000"
    stop = client.submit_order(
        StopOrderRequest(
            symbol="BTC/USD", qty=0.005, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, stop_price=40000
        )
    )
    assert stop.status is OrderStatus.NEW and stop.stop_price == "40000"
    stop_limit = client.submit_order(
        StopLimitOrderRequest(
            symbol="BTC/USD",
            qty=0.005,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            stop_price=41000,
            limit_price=40900,
        )
    )
    assert stop_limit.type.value == "stop_limit"

    open_orders = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert {order.id for order in open_orders} == {resting.id, stop.id, stop_limit.id}
    native_open = trader.client.orders(account_id=trader.account_id)["items"]
    assert {order["id"] for order in native_open} == {native_order_id(o.id) for o in open_orders}

    by_client = client.get_order_by_client_id("alpaca-limit-1")
    assert by_client.id == resting.id
    # an order placed without a client id shows its own id there, and is found by it
    assert client.get_order_by_client_id(str(stop.id)).id == stop.id

    replaced = client.replace_order_by_id(resting.id, ReplaceOrderRequest(qty=1, limit_price=45500))
    assert replaced.id == resting.id and replaced.qty == "1" and replaced.limit_price == "45500"
    assert trader.client.order(native_order_id(resting.id))["price"] == "45500"

    client.cancel_order_by_id(stop.id)
    assert client.get_order_by_id(stop.id).status is OrderStatus.CANCELED
    cancelled = client.cancel_orders()
    assert {response.id for response in cancelled} == {resting.id, stop_limit.id}
    assert all(response.status == 200 for response in cancelled)
    assert client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN)) == []
    closed = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.CLOSED, limit=10))
    assert [order.id for order in closed] == [stop_limit.id, stop.id, resting.id, bought.id]
    with pytest.raises(APIError) as refused:
        client.cancel_order_by_id(stop.id)
    assert refused.value.status_code == 422 and refused.value.code == 42210000


def test_positions_close_and_activities(server: Server) -> None:
    trader = alpaca_trader(server)
    client = trading(trader)
    first = client.submit_order(
        MarketOrderRequest(symbol="BTC/USD", qty=1.5, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )
    assert first.filled_qty == "1.5"
    [position] = client.get_all_positions()
    assert position.symbol == "BTC/USD" and position.qty == "1.5" and position.side.value == "long"
    assert Decimal(position.avg_entry_price) == Decimal(native_position(trader)["average_entry_price"])
    native = trader.client.account(trader.account_id)
    account = client.get_account()
    assert account.cash == native["available"]
    assert Decimal(account.equity) == Decimal(native["equity"])
    assert client.get_open_position("BTCUSD").qty == "1.5"
    closing = client.close_position("BTC/USD", ClosePositionRequest(percentage="50"))
    assert closing.side is OrderSide.SELL and closing.qty == "0.75" and closing.status is OrderStatus.FILLED
    assert client.get_open_position("BTC/USD").qty == "0.75"
    activities = httpx.get(trader.base + "/v2/account/activities/FILL", headers=trader.headers).json()
    fills = trader.client.trades(account_id=trader.account_id)["items"]
    assert [(a["price"], a["qty"], a["side"]) for a in activities] == [
        (f["price"], f["quantity"], f["side"]) for f in fills
    ]
    assert activities[-1]["order_id"] == str(first.id)
    assert activities[0]["type"] == "fill" and activities[0]["leaves_qty"] == "0"
    responses = client.close_all_positions()
    assert [response.symbol for response in responses] == ["BTC/USD"]
    assert client.get_all_positions() == []
    history = client.get_portfolio_history()
    assert history.timeframe == "1D"


def native_position(trader: AlpacaTrader) -> dict[str, str]:
    [position] = trader.client.positions(account_id=trader.account_id)["items"]
    return position  # type: ignore[no-any-return]


def test_refusals_answer_like_alpaca(server: Server) -> None:
    trader = alpaca_trader(server, funded="100")
    client = trading(trader)
    with pytest.raises(APIError) as refused:
        client.submit_order(
            MarketOrderRequest(symbol="BTC/USD", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
        )
    assert refused.value.status_code == 403 and refused.value.code == 40310000
    assert refused.value.message.startswith("insufficient balance for USD")
    with pytest.raises(APIError) as unknown:
        client.get_order_by_id(order_uuid(987654321))
    assert unknown.value.status_code == 404 and unknown.value.code == 40410000
    wrong = TradingClient(trader.key_id, trader.secret + "x", url_override=trader.base)
    with pytest.raises(APIError) as unauthorized:
        wrong.get_account()
    assert unauthorized.value.status_code == 401 and unauthorized.value.code == 40110000
    assert unauthorized.value.message == "request is not authorized"
    other = alpaca_trader(server)
    mismatched = TradingClient(other.key_id, trader.secret, url_override=trader.base)
    with pytest.raises(APIError) as mismatch:
        mismatched.get_account()
    assert mismatch.value.status_code == 401
    reader = alpaca_trader(server, scopes=["read"])
    with pytest.raises(APIError) as read_only:
        trading(reader).submit_order(
            MarketOrderRequest(symbol="BTC/USD", qty=0.001, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
        )
    assert read_only.value.status_code == 403 and read_only.value.code == 40310000
    missing = httpx.get(trader.base + "/v2/account")
    assert (missing.status_code, missing.json()) == (
        401,
        {"code": 40110000, "message": "request is not authorized"},
    )
    bad_qty = httpx.post(
        trader.base + "/v2/orders",
        headers=trader.headers,
        json={"symbol": "BTC/USD", "qty": "-1", "side": "buy", "type": "market", "time_in_force": "gtc"},
    )
    assert bad_qty.status_code == 422 and bad_qty.json()["code"] == 42210000
    unknown_asset = httpx.post(
        trader.base + "/v2/orders",
        headers=trader.headers,
        json={"symbol": "BTC-PERP", "qty": "1", "side": "buy", "type": "market", "time_in_force": "gtc"},
    )
    assert unknown_asset.status_code == 422 and unknown_asset.json()["code"] == 42210000
    assert trader.client.orders(account_id=trader.account_id, status="all")["items"] == []


def test_numbers_as_strings_or_numbers_and_notional(server: Server) -> None:
    trader = alpaca_trader(server)
    as_number = httpx.post(
        trader.base + "/v2/orders",
        headers=trader.headers,
        json={
            "symbol": "BTC/USD",
            "qty": 0.003,
            "side": "buy",
            "type": "limit",
            "limit_price": 44000.5,
            "time_in_force": "gtc",
        },
    )
    as_string = httpx.post(
        trader.base + "/v2/orders",
        headers=trader.headers,
        json={
            "symbol": "BTC/USD",
            "qty": "0.003",
            "side": "buy",
            "type": "limit",
            "limit_price": "44000.5",
            "time_in_force": "gtc",
        },
    )
    assert as_number.status_code == as_string.status_code == 200
    for answer in (as_number, as_string):
        assert (answer.json()["qty"], answer.json()["limit_price"]) == ("0.003", "44000.5")
    notional = httpx.post(
        trader.base + "/v2/orders",
        headers=trader.headers,
        json={
            "symbol": "BTC/USD",
            "notional": "1000",
            "side": "buy",
            "type": "market",
            "time_in_force": "ioc",
        },
    )
    assert notional.status_code == 200
    # 1000 USD at the best ask (50000, or higher once the earlier tests took it) floors to the lot
    assert Decimal(notional.json()["filled_qty"]) <= Decimal("0.02")
    assert Decimal(notional.json()["filled_qty"]) >= Decimal("0.019")


def test_trailing_stop_trails_the_last_price_and_re_trails(server: Server) -> None:
    trader = alpaca_trader(server)
    client = trading(trader)
    client.submit_order(
        MarketOrderRequest(symbol="BTC/USD", qty=0.01, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )
    last = Decimal(trader.client.ticker("BTC-USD")["last"])
    trailing = client.submit_order(
        TrailingStopOrderRequest(
            symbol="BTC/USD", qty=0.01, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, trail_percent=1
        )
    )
    assert trailing.type.value == "trailing_stop" and trailing.status is OrderStatus.NEW
    assert (Decimal(trailing.hwm), trailing.trail_percent) == (last, "1")
    tick = Decimal("0.5")
    assert abs(Decimal(trailing.stop_price) - last * Decimal("0.99")) < tick  # on the tick grid
    native = trader.client.order(native_order_id(trailing.id))
    assert (native["type"], native["hwm"], native["stop_price"]) == (
        "trailing_stop",
        trailing.hwm,
        trailing.stop_price,
    )
    re_trailed = client.replace_order_by_id(trailing.id, ReplaceOrderRequest(trail=2))
    assert abs(Decimal(re_trailed.stop_price) - last * Decimal("0.98")) < tick
    assert re_trailed.trail_percent == "2"
    assert trader.client.order(native_order_id(trailing.id))["stop_price"] == re_trailed.stop_price
    client.cancel_order_by_id(trailing.id)
    by_price = client.submit_order(
        TrailingStopOrderRequest(
            symbol="BTC/USD", qty=0.01, side=OrderSide.SELL, time_in_force=TimeInForce.GTC, trail_price=250
        )
    )
    assert (by_price.trail_price, Decimal(by_price.stop_price)) == ("250", last - 250)


def test_bracket_oto_and_oco_orders_are_tradehall_contingent_orders(server: Server) -> None:
    trader = alpaca_trader(server)
    client = trading(trader)
    entry = client.submit_order(
        MarketOrderRequest(
            symbol="BTC/USD",
            qty=0.01,
            side=OrderSide.BUY,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.BRACKET,
            take_profit=TakeProfitRequest(limit_price=60000),
            stop_loss=StopLossRequest(stop_price=40000),
        )
    )
    assert (entry.order_class, entry.status) == (OrderClass.BRACKET, OrderStatus.FILLED)
    legs = client.get_order_by_id(entry.id).legs
    assert legs is not None
    assert [(leg.type.value, leg.side, leg.limit_price, leg.stop_price) for leg in legs] == [
        ("limit", OrderSide.SELL, "60000", None),
        ("stop", OrderSide.SELL, None, "40000"),
    ]
    native = trader.client.order(native_order_id(entry.id))
    assert [native_order_id(leg.id) for leg in legs] == [leg["id"] for leg in native["legs"]]
    nested = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN, nested=True))
    assert nested == []  # the entry has filled; its open legs are listed inside it only when asked
    flat = client.get_orders(GetOrdersRequest(status=QueryOrderStatus.OPEN))
    assert {order.id for order in flat} == {leg.id for leg in legs}
    assert {response.id for response in client.cancel_orders()} == {leg.id for leg in legs}

    oco = client.submit_order(
        LimitOrderRequest(
            symbol="BTC/USD",
            qty=0.01,
            side=OrderSide.SELL,
            time_in_force=TimeInForce.GTC,
            order_class=OrderClass.OCO,
            take_profit=TakeProfitRequest(limit_price=61000),
            stop_loss=StopLossRequest(stop_price=41000, limit_price=40900),
        )
    )
    assert (oco.order_class, oco.limit_price) == (OrderClass.OCO, "61000")
    [stop] = client.get_order_by_id(oco.id).legs or []
    assert (stop.type.value, stop.stop_price, stop.limit_price) == ("stop_limit", "41000", "40900")
    client.cancel_orders()

    half = httpx.post(
        trader.base + "/v2/orders",
        headers=trader.headers,
        json={
            "symbol": "BTC/USD",
            "qty": "0.01",
            "side": "buy",
            "type": "market",
            "time_in_force": "gtc",
            "order_class": "bracket",
            "take_profit": {"limit_price": "60000"},
        },
    )
    assert (half.status_code, half.json()["code"]) == (422, 42210000)


def test_crypto_data_client_reads_bars_quotes_and_book(server: Server) -> None:
    trader = alpaca_trader(server)
    trading(trader).submit_order(
        MarketOrderRequest(symbol="BTC/USD", qty=0.002, side=OrderSide.BUY, time_in_force=TimeInForce.GTC)
    )
    data = CryptoHistoricalDataClient(trader.key_id, trader.secret, url_override=trader.base)
    start = datetime.now(UTC) - timedelta(days=1)
    bars = data.get_crypto_bars(
        CryptoBarsRequest(
            symbol_or_symbols="BTC/USD", timeframe=TimeFrame(1, TimeFrameUnit.Minute), start=start
        )
    )
    native = trader.client.candles("BTC-USD", interval="1m", start=start.isoformat())["items"]
    assert [(bar.open, bar.close, bar.volume) for bar in bars.data["BTC/USD"]] == [
        (float(c["open"]), float(c["close"]), float(c["volume"])) for c in native
    ]
    quote = data.get_crypto_latest_quote(CryptoLatestQuoteRequest(symbol_or_symbols="BTC/USD"))["BTC/USD"]
    book = trader.client.book("BTC-USD")
    assert (quote.bid_price, quote.ask_price) == (float(book["bids"][0][0]), float(book["asks"][0][0]))
    orderbook = data.get_crypto_latest_orderbook(CryptoLatestOrderbookRequest(symbol_or_symbols="BTC/USD"))
    assert [(level.price, level.size) for level in orderbook["BTC/USD"].asks] == [
        (float(price), float(size)) for price, size in trader.client.book("BTC-USD", depth=1000)["asks"]
    ]


def test_historical_quotes_answer_404_naming_what_is_kept(server: Server) -> None:
    """tradehall keeps no quote history: a clear 404 in Alpaca's shape, never an empty list."""
    quotes = httpx.get(server.url + "/alpaca/v1beta3/crypto/us/quotes", params={"symbols": "BTC/USD"})
    assert quotes.status_code == 404
    assert quotes.json() == {
        "code": 40410000,
        "message": "tradehall keeps no history of quotes: the best bid and ask now are at latest/quotes "
        "(the whole book at latest/orderbooks); trades and bars have history (trades, bars)",
    }
