"""ccxt's `alpaca` exchange, `urls.api` pointed at a real tradehall server, checked against the native API."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import ccxt
import pytest

from tests.e2e.alpaca_support import AlpacaTrader, alpaca_trader, seed_book
from tests.e2e.test_api_harness import Server, running_server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("alpaca-ccxt")) as running:
        seed_book(running)
        yield running


def exchange_for(trader: AlpacaTrader) -> ccxt.alpaca:
    exchange = ccxt.alpaca({"apiKey": trader.key_id, "secret": trader.secret, "enableRateLimit": False})
    exchange.urls["api"] = {"trader": trader.base, "market": trader.base, "broker": trader.base}
    return exchange


def native_id(ccxt_order: dict) -> str:  # type: ignore[type-arg]
    return str(int(ccxt_order["id"].replace("-", ""), 16) & ((1 << 62) - 1))


def test_markets_balance_ticker_book_and_candles(server: Server) -> None:
    trader = alpaca_trader(server)
    exchange = exchange_for(trader)
    markets = exchange.load_markets()
    assert list(markets) == ["BTC/USD"]
    market = markets["BTC/USD"]
    assert (market["spot"], market["precision"]["price"], market["precision"]["amount"]) == (True, 0.5, 0.001)
    balance = exchange.fetch_balance()
    assert (balance["USD"]["free"], balance["USD"]["total"]) == (100000.0, 100000.0)
    exchange.create_order("BTC/USD", "market", "buy", 0.02)
    balance = exchange.fetch_balance()
    native = trader.client.account(trader.account_id)
    held = {entry["currency"]: entry for entry in native["balances"]}
    assert balance["USD"]["free"] == float(held["USD"]["available"]) == 98999.0
    assert balance["BTC"]["total"] == float(held["BTC"]["total"]) == 0.02
    ticker = exchange.fetch_ticker("BTC/USD")
    native_ticker = trader.client.ticker("BTC-USD")
    assert (ticker["bid"], ticker["ask"], ticker["last"]) == (
        float(native_ticker["bid"]),
        float(native_ticker["ask"]),
        float(native_ticker["last"]),
    )
    book = exchange.fetch_order_book("BTC/USD")
    native_book = trader.client.book("BTC-USD", depth=1000)
    assert book["bids"] == [[float(p), float(q)] for p, q in native_book["bids"]]
    assert book["asks"] == [[float(p), float(q)] for p, q in native_book["asks"]]
    since = datetime.now(UTC) - timedelta(hours=2)
    candles = exchange.fetch_ohlcv("BTC/USD", "1m", since=int(since.timestamp() * 1000))
    native_candles = trader.client.candles("BTC-USD", interval="1m", start=since.isoformat())["items"]
    assert [candle[1:] for candle in candles] == [
        [float(c[key]) for key in ("open", "high", "low", "close", "volume")] for c in native_candles
    ]
    assert candles, "the buy above traded"


def test_orders_and_my_trades(server: Server) -> None:
    trader = alpaca_trader(server)
    exchange = exchange_for(trader)
    exchange.load_markets()
    bought = exchange.create_order("BTC/USD", "market", "buy", 0.01)
    assert bought["status"] == "closed" and bought["filled"] == 0.01 and bought["average"] == 50000.0
    limit = exchange.create_order("BTC/USD", "limit", "buy", 0.01, 45000)
    assert limit["status"] == "open" and limit["price"] == 45000.0
    assert limit["clientOrderId"].startswith("ccxt_")
    fetched = exchange.fetch_order(limit["id"])
    native = trader.client.order(native_id(limit))
    assert (fetched["amount"], fetched["price"], fetched["status"]) == (
        float(native["quantity"]),
        float(native["price"]),
        "open",
    )
    assert native["client_order_id"] == limit["clientOrderId"]
    assert [order["id"] for order in exchange.fetch_open_orders("BTC/USD")] == [limit["id"]]
    exchange.cancel_order(limit["id"])
    assert exchange.fetch_order(limit["id"])["status"] == "canceled"
    assert trader.client.order(native_id(limit))["status"] == "cancelled"
    assert exchange.fetch_open_orders() == []
    trades = exchange.fetch_my_trades("BTC/USD")
    fills = trader.client.trades(account_id=trader.account_id)["items"]
    assert [(t["order"], t["price"], t["amount"], t["side"]) for t in trades] == [
        (bought["id"], float(f["price"]), float(f["quantity"]), f["side"]) for f in fills
    ]
    sold = exchange.create_order("BTC/USD", "market", "sell", 0.01)
    assert sold["status"] == "closed" and sold["average"] == 49000.0
    native_account = trader.client.account(trader.account_id)
    # bought 0.01 at 50000 (fee 0.50), sold at 49000 (fee 0.49): 100000 - 500.50 + 490 - 0.49
    assert Decimal(native_account["balance"]) == Decimal("99989.01")
    assert exchange.fetch_balance()["USD"]["total"] == 99989.01


def test_errors_map_to_ccxt_exceptions(server: Server) -> None:
    trader = alpaca_trader(server, funded="10")
    exchange = exchange_for(trader)
    exchange.load_markets()
    with pytest.raises(ccxt.InsufficientFunds):
        exchange.create_order("BTC/USD", "market", "buy", 1)
    wrong = exchange_for(trader)
    wrong.secret = "th_wrong"
    with pytest.raises(ccxt.PermissionDenied):
        wrong.fetch_balance()
