from __future__ import annotations

import pytest

from tests.fixtures.bus_records import BASE_TS
from tradehall.bus.topics import InvalidTopicError, Route, families_of_pattern, route_of, topic_matches
from tradehall.domain.commands import CancelOrder, MarkPrice, Quote, SetMarketStatus
from tradehall.domain.enums import AccountStatus, MarketStatus, Outcome, Side, TradingState
from tradehall.domain.errors import Code
from tradehall.domain.events import (
    AccountStatusChanged,
    BalanceChanged,
    BookChanged,
    CommandRejected,
    MarketSettled,
    MarketStatusChanged,
    MarkPriceUpdated,
    OrderTriggered,
    TradeExecuted,
)

MARK = MarkPrice(market="BTC-PERP", price=1, ts=BASE_TS)


@pytest.mark.parametrize(
    ("event", "command", "route"),
    [
        (
            OrderTriggered(order_id=1, account_id="a1", market="BTC-PERP", ts=0),
            MARK,
            Route("orders.BTC-PERP", "BTC-PERP"),
        ),
        (
            TradeExecuted(
                trade_id=1,
                market="ETH-PERP",
                price=1,
                quantity=1,
                taker_side=Side.BUY,
                maker_order_id=1,
                taker_order_id=2,
                maker_account_id="m",
                taker_account_id="t",
                ts=0,
            ),
            MARK,
            Route("trades.ETH-PERP", "ETH-PERP"),
        ),
        (
            BalanceChanged(account_id="a1", currency="USD", total=1, held=0, delta=1, reason="deposit"),
            MARK,
            Route("accounts", "a1"),
        ),
        (
            AccountStatusChanged(
                account_id="a2",
                status=AccountStatus.FAILED,
                trading_state=TradingState.HALTED,
                reason="dd",
                ts=0,
            ),
            MARK,
            Route("accounts", "a2"),
        ),
        (MarketStatusChanged(market="X", status=MarketStatus.HALTED, ts=0), MARK, Route("markets", "X")),
        (MarketSettled(market="Y", outcome=Outcome.YES, payouts=(), ts=0), MARK, Route("markets", "Y")),
        (BookChanged(market="X", sequence=1, bids=(), asks=()), MARK, Route("market-data.book-ticks", "X")),
        (MarkPriceUpdated(market="X", price=1, ts=0), MARK, Route("market-data.mark-ticks", "X")),
        (
            MarkPriceUpdated(market="X", price=1, ts=0),
            Quote(market="X", source="Binance.US"),
            Route("market-data.binance_us-ticks", "X"),
        ),
        (
            CommandRejected(command="CancelOrder", code=Code.NOT_FOUND, reason="no order", ts=0),
            CancelOrder(order_id=9, account_id="a7"),
            Route("accounts", "a7"),
        ),
        (
            CommandRejected(command="SetMarketStatus", code=Code.NOT_FOUND, reason="no market", ts=0),
            SetMarketStatus(market="Z", status=MarketStatus.OPEN),
            Route("markets", "Z"),
        ),
    ],
)
def test_each_event_goes_to_its_topic_keyed_by_market_or_account(event, command, route) -> None:  # type: ignore[no-untyped-def]
    assert route_of(event, command) == route


@pytest.mark.parametrize(
    ("pattern", "topic", "matches"),
    [
        ("trades.BTC-PERP", "trades.BTC-PERP", True),
        ("trades.BTC-PERP", "trades.ETH-PERP", False),
        ("trades.*", "trades.ETH-PERP", True),
        ("trades.*", "trades", False),
        ("*.BTC-PERP", "orders.BTC-PERP", True),
        ("*.BTC-PERP", "accounts", False),
        ("market-data.>", "market-data.binance-ticks", True),
        ("market-data.>", "market-data", False),
        (">", "accounts", True),
        ("accounts", "accounts", True),
        ("accounts", "accounts.x", False),
    ],
)
def test_topic_patterns_use_nats_wildcards(pattern: str, topic: str, matches: bool) -> None:
    assert topic_matches(pattern, topic) is matches


def test_pattern_families_and_invalid_patterns() -> None:
    assert families_of_pattern("orders.*") == ("orders",)
    assert families_of_pattern("*.BTC-PERP") == ("orders", "trades", "accounts", "markets", "market-data")
    with pytest.raises(InvalidTopicError, match="unknown topic family 'fills'"):
        families_of_pattern("fills.*")
    with pytest.raises(InvalidTopicError, match="'>' must be the last token"):
        topic_matches(">.x", "a.x")
    with pytest.raises(InvalidTopicError, match="empty token"):
        topic_matches("orders..x", "orders.x")
