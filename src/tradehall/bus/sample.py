"""Journal records built from domain events without an engine: for tests, the benchmark and the docs.

The shapes follow what the engine journals (a `CreateMarket` with its `MarketCreated`, a `PlaceOrder`
with acceptance, trade and fills), with deterministic values.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal

from tradehall.domain.commands import CreateMarket, MarkPrice, OpenAccount, PlaceOrder
from tradehall.domain.enums import (
    AccountKind,
    CostBasis,
    Liquidity,
    MarketKind,
    OrderSide,
    OrderStatus,
    OrderType,
    Side,
    TimeInForce,
)
from tradehall.domain.events import (
    AccountOpened,
    MarketCreated,
    MarkPriceUpdated,
    OrderAccepted,
    OrderFilled,
    TradeExecuted,
)
from tradehall.domain.market import MarketSpec
from tradehall.journal.records import JournalRecord

BASE_TS = 1_767_225_600_000_000_000
"""2026-01-01T00:00:00Z in nanoseconds."""


def perp_spec(symbol: str = "BTC-PERP") -> MarketSpec:
    base = symbol.split("-")[0]
    return MarketSpec(
        symbol=symbol,
        kind=MarketKind.PERP,
        base=base,
        quote="USD",
        tick_size=Decimal("0.5"),
        lot_size=Decimal("0.001"),
        taker_fee=Decimal("0.0005"),
        max_leverage=Decimal("20"),
        initial_margin=Decimal("0.05"),
        maintenance_margin=Decimal("0.025"),
    )


def market_created(seq: int, spec: MarketSpec) -> JournalRecord:
    ts = BASE_TS + seq * 1_000
    return JournalRecord(
        seq=seq,
        ts=ts,
        command=CreateMarket(spec=spec, ts=ts, correlation_id=f"c-{seq}"),
        events=(MarketCreated(spec=spec, ts=ts),),
    )


def account_opened(seq: int, account_id: str) -> JournalRecord:
    ts = BASE_TS + seq * 1_000
    return JournalRecord(
        seq=seq,
        ts=ts,
        command=OpenAccount(account_id=account_id, owner=account_id, ts=ts, correlation_id=f"c-{seq}"),
        events=(
            AccountOpened(
                account_id=account_id,
                owner=account_id,
                kind=AccountKind.CASH,
                currency="USD",
                cost_basis=CostBasis.AVERAGE,
                tier=None,
                ts=ts,
            ),
        ),
    )


def crossing_order(seq: int, market: str, price_ticks: int = 200_000, lots: int = 10) -> JournalRecord:
    """A taker buy that fills against a resting sell: accepted, one trade, two fills (4 events)."""
    ts = BASE_TS + seq * 1_000
    order_id = seq
    maker_id = seq + 1_000_000_000
    return JournalRecord(
        seq=seq,
        ts=ts,
        command=PlaceOrder(
            account_id="taker",
            market=market,
            side=OrderSide.BUY,
            quantity=Decimal(lots) / 1000,
            price=Decimal(price_ticks) / 2,
            ts=ts,
            correlation_id=f"c-{seq}",
        ),
        events=(
            OrderAccepted(
                order_id=order_id,
                account_id="taker",
                market=market,
                side=Side.BUY,
                requested_side=OrderSide.BUY,
                type=OrderType.LIMIT,
                time_in_force=TimeInForce.GTC,
                quantity=lots,
                price=price_ticks,
                stop_price=None,
                expire_at=None,
                post_only=False,
                reduce_only=False,
                client_order_id=None,
                status=OrderStatus.OPEN,
                ts=ts,
            ),
            TradeExecuted(
                trade_id=seq,
                market=market,
                price=price_ticks,
                quantity=lots,
                taker_side=Side.BUY,
                maker_order_id=maker_id,
                taker_order_id=order_id,
                maker_account_id="maker",
                taker_account_id="taker",
                ts=ts,
            ),
            OrderFilled(
                order_id=maker_id,
                account_id="maker",
                market=market,
                trade_id=seq,
                side=Side.SELL,
                price=price_ticks,
                quantity=lots,
                fee=0,
                liquidity=Liquidity.MAKER,
                realized_pnl=0,
                filled_quantity=lots,
                status=OrderStatus.FILLED,
                ts=ts,
            ),
            OrderFilled(
                order_id=order_id,
                account_id="taker",
                market=market,
                trade_id=seq,
                side=Side.BUY,
                price=price_ticks,
                quantity=lots,
                fee=50,
                liquidity=Liquidity.TAKER,
                realized_pnl=0,
                filled_quantity=lots,
                status=OrderStatus.FILLED,
                ts=ts,
            ),
        ),
    )


def mark(seq: int, market: str, price_ticks: int) -> JournalRecord:
    ts = BASE_TS + seq * 1_000
    return JournalRecord(
        seq=seq,
        ts=ts,
        command=MarkPrice(market=market, price=Decimal(price_ticks) / 2, ts=ts, correlation_id=f"c-{seq}"),
        events=(MarkPriceUpdated(market=market, price=price_ticks, ts=ts),),
    )


def trading_records(markets: tuple[str, ...], orders: int, first_seq: int = 1) -> Iterator[JournalRecord]:
    """Market creation for each market, then `orders` crossing orders round-robin over the markets."""
    seq = first_seq
    for market in markets:
        yield market_created(seq, perp_spec(market))
        seq += 1
    for number in range(orders):
        yield crossing_order(seq, markets[number % len(markets)], price_ticks=200_000 + number % 50)
        seq += 1
