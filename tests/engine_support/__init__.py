"""Builders for engine tests: markets, funded accounts, and event lookups."""

from __future__ import annotations

from decimal import Decimal
from typing import Any, TypeVar

from tradehall.domain import commands as c
from tradehall.domain import events as ev
from tradehall.domain.enums import FeeModel, MarketKind, SelfTradePrevention
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine
from tradehall.engine.book import OrderBook
from tradehall.engine.markets import Book

E = TypeVar("E", bound=ev.Event)

D = Decimal


def spot_spec(symbol: str = "BTC-USD", **overrides: Any) -> MarketSpec:
    fields: dict[str, Any] = dict(
        symbol=symbol,
        kind=MarketKind.SPOT,
        base="BTC",
        quote="USD",
        tick_size=D("0.01"),
        lot_size=D("0.0001"),
        maker_fee=D("0.001"),
        taker_fee=D("0.002"),
    )
    fields.update(overrides)
    return MarketSpec(**fields)


def perp_spec(symbol: str = "BTC-PERP", **overrides: Any) -> MarketSpec:
    fields: dict[str, Any] = dict(
        symbol=symbol,
        kind=MarketKind.PERP,
        base="BTC",
        quote="USD",
        tick_size=D("0.5"),
        lot_size=D("0.001"),
        maker_fee=D("0"),
        taker_fee=D("0.0005"),
        max_leverage=D("10"),
    )
    fields.update(overrides)
    return MarketSpec(**fields)


def binary_spec(symbol: str = "FED-CUT", **overrides: Any) -> MarketSpec:
    fields: dict[str, Any] = dict(
        symbol=symbol,
        kind=MarketKind.BINARY,
        base=symbol,
        quote="USD",
        tick_size=D("0.01"),
        lot_size=D("1"),
        fee_model=FeeModel.QUADRATIC,
    )
    fields.update(overrides)
    return MarketSpec(**fields)


def engine_with(
    *specs: MarketSpec,
    accounts: dict[str, dict[str, str]] | None = None,
    book_factory: type[Book] | None = None,
) -> Engine:
    """An engine with the given markets and accounts funded as {account: {currency: amount}}."""
    engine = Engine(book_factory=book_factory or OrderBook)
    for spec in specs:
        expect_no_rejection(engine.apply(c.CreateMarket(spec=spec)))
    for account_id, funds in (accounts or {}).items():
        expect_no_rejection(engine.apply(c.OpenAccount(account_id=account_id, owner=account_id)))
        for currency, amount in funds.items():
            expect_no_rejection(
                engine.apply(c.Deposit(account_id=account_id, amount=D(amount), currency=currency))
            )
    return engine


def expect_no_rejection(events: list[ev.AnyEvent]) -> list[ev.AnyEvent]:
    bad = [e for e in events if isinstance(e, ev.OrderRejected | ev.CommandRejected)]
    assert not bad, bad
    return events


def of_type(events: list[ev.AnyEvent], kind: type[E]) -> list[E]:
    return [e for e in events if isinstance(e, kind)]


def one(events: list[ev.AnyEvent], kind: type[E]) -> E:
    found = of_type(events, kind)
    assert len(found) == 1, (kind.__name__, events)
    return found[0]


def place(
    engine: Engine,
    account: str,
    market: str,
    side: str,
    quantity: str,
    price: str | None = None,
    **fields: Any,
) -> list[ev.AnyEvent]:
    return engine.apply(
        c.PlaceOrder(
            account_id=account,
            market=market,
            side=side,  # type: ignore[arg-type]
            quantity=D(quantity),
            price=D(price) if price is not None else None,
            **fields,
        )
    )


def balance(engine: Engine, account: str, currency: str = "USD") -> tuple[int, int]:
    """(total, held) in minor units."""
    found = engine.accounts[account].balances.get(currency)
    return (0, 0) if found is None else (found.total, found.held)


def order_id(events: list[ev.AnyEvent]) -> int:
    return one(events, ev.OrderAccepted).order_id


__all__ = [
    "SelfTradePrevention",
    "balance",
    "binary_spec",
    "engine_with",
    "expect_no_rejection",
    "of_type",
    "one",
    "order_id",
    "perp_spec",
    "place",
    "spot_spec",
]
