"""Random command streams for property tests, and the engine invariants they check."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from hypothesis import strategies as st

from tests.engine_support import binary_spec, perp_spec, spot_spec
from tradehall.domain import commands as c
from tradehall.domain.enums import (
    MarketKind,
    MarketStatus,
    OrderClass,
    OrderStatus,
    OrderType,
    SelfTradePrevention,
    Side,
    StopTrigger,
)
from tradehall.engine import Engine
from tradehall.engine.checks import trailing_stop_price, trigger_price
from tradehall.engine.stop_book import TRIGGER_RANK

ACCOUNTS = ("a", "b", "c", "poor")
MID = {"BTC-USD": 10_000, "BTC-PERP": 20_000, "FED-CUT": 50}
STEP = {"BTC-USD": Decimal("0.01"), "BTC-PERP": Decimal("0.5"), "FED-CUT": Decimal("0.01")}
LOT = {"BTC-USD": Decimal("0.0001"), "BTC-PERP": Decimal("0.001"), "FED-CUT": Decimal("1")}
SIDES = {
    "BTC-USD": ("buy", "sell"),
    "BTC-PERP": ("buy", "sell", "long", "short"),
    "FED-CUT": ("yes", "no", "buy", "sell"),
}


def setup_commands(stp: SelfTradePrevention = SelfTradePrevention.CANCEL_NEWEST) -> list[c.Command]:
    commands: list[c.Command] = [
        c.CreateMarket(spec=spot_spec(self_trade_prevention=stp)),
        c.CreateMarket(spec=perp_spec(self_trade_prevention=stp)),
        c.CreateMarket(spec=binary_spec(self_trade_prevention=stp)),
    ]
    for account in ACCOUNTS:
        rich = account != "poor"
        commands.append(c.OpenAccount(account_id=account, owner=account))
        commands.append(c.Deposit(account_id=account, amount=Decimal("50000" if rich else "300")))
        commands.append(
            c.Deposit(account_id=account, amount=Decimal("5" if rich else "0.002"), currency="BTC")
        )
    return commands


@st.composite
def place_orders(draw: st.DrawFn) -> c.Command:
    market = draw(st.sampled_from(tuple(MID)))
    offset = draw(st.integers(-3, 3))
    ticks = MID[market] + offset if market != "FED-CUT" else min(99, max(1, 50 + offset * 5))
    kind = draw(
        st.sampled_from(
            (
                "limit",
                "limit",
                "limit",
                "market",
                "ioc",
                "fok",
                "post",
                "stop",
                "stop_limit",
                "day",
                "trailing",
                "bracket",
                "bracket",
                "oco",
            )
        )
    )
    fields: dict[str, Any] = {
        "account_id": draw(st.sampled_from(ACCOUNTS)),
        "market": market,
        "side": draw(st.sampled_from(SIDES[market])),
        "quantity": LOT[market] * draw(st.integers(1, 30)),
        "price": STEP[market] * ticks,
    }
    if kind == "market":
        fields.update(type="market", price=None)
    elif kind in ("ioc", "fok"):
        fields.update(time_in_force=kind)
    elif kind == "post":
        fields.update(post_only=True)
    elif kind == "day":
        fields.update(time_in_force="day")
    elif kind in ("stop", "stop_limit"):
        stop_ticks = ticks + draw(st.integers(-3, 3))
        if market == "FED-CUT":
            stop_ticks = min(99, max(1, stop_ticks))
        fields.update(type=kind, stop_price=STEP[market] * stop_ticks)
        if kind == "stop":
            fields["price"] = None
    elif kind == "trailing":
        fields.update(trailing_terms(draw, market, ticks))
    elif kind in ("bracket", "oco"):
        fields.update(contingent_terms(draw, market, ticks, kind, fields["side"]))
    if market == "BTC-PERP" and draw(st.integers(0, 9)) == 0:
        fields["reduce_only"] = True
    if draw(st.integers(0, 9)) == 0:
        fields["client_order_id"] = f"cid-{draw(st.integers(0, 5))}"
    return c.PlaceOrder(**fields)


def contingent_terms(draw: st.DrawFn, market: str, ticks: int, kind: str, side: str) -> dict[str, Any]:
    """A bracket (market or limit entry; sometimes an oto or the plain-string form) or an oco, with
    exits a few ticks either side (some on the wrong side, so some are refused)."""
    long = side in ("buy", "long", "yes")
    if kind == "oco":
        long = not long  # the oco's side is the exit's
    up = 1 if long else -1
    take = ticks + up * draw(st.integers(-1, 6))
    stop = ticks - up * draw(st.integers(-1, 6))
    if market == "FED-CUT":  # binary prices move in steps of 5 ticks here, and a NO's are mirrored
        take, stop = min(99, max(1, take)), min(99, max(1, stop))
    fields: dict[str, Any] = {
        "take_profit": STEP[market] * take,
        "stop_loss": STEP[market] * stop,
        "order_class": kind,
    }
    if draw(st.integers(0, 3)) == 0:
        limit = stop - up * draw(st.integers(0, 2))
        fields["stop_loss_limit"] = STEP[market] * (min(99, max(1, limit)) if market == "FED-CUT" else limit)
    if kind == "oco":
        fields.update(time_in_force="gtc", price=None)  # an oco's price is its take-profit
        return fields
    form = draw(st.sampled_from(("limit", "market", "oto_take", "oto_stop", "plain")))
    if form == "market":
        fields.update(type="market", price=None)
    elif form == "oto_take":
        fields.update(order_class="oto", stop_loss=None, stop_loss_limit=None)
    elif form == "oto_stop":
        fields.update(order_class="oto", take_profit=None)
    elif form == "plain":
        fields["order_class"] = None
    return fields


TRAIL_PERCENTS = (Decimal("0.03"), Decimal("0.1"), Decimal("1.5"), Decimal("7"))
TRIGGERS = (None, StopTrigger.LAST, StopTrigger.MARK, StopTrigger.BID_ASK)


def trailing_terms(draw: st.DrawFn, market: str, ticks: int) -> dict[str, Any]:
    """A trailing stop's fields: a percent or a price trail, sometimes an activation price near the
    market (either side, so some are refused), any trigger source."""
    fields: dict[str, Any] = {
        "type": "trailing_stop",
        "price": None,
        "trigger": draw(st.sampled_from(TRIGGERS)),
    }
    if draw(st.booleans()):
        fields["trail_percent"] = draw(st.sampled_from(TRAIL_PERCENTS))
    else:
        fields["trail_price"] = STEP[market] * draw(st.integers(1, 4))
    if draw(st.integers(0, 2)) == 0:
        activation = ticks + draw(st.integers(-4, 4))
        if market == "FED-CUT":
            activation = min(99, max(1, activation))
        fields["activation_price"] = STEP[market] * activation
    return fields


@st.composite
def other_commands(draw: st.DrawFn) -> c.Command:
    choice = draw(
        st.sampled_from(("cancel", "cancel", "amend", "amend", "cancel_all", "time", "mark", "retrail"))
    )
    order_id = draw(st.integers(1, 60))
    account = draw(st.sampled_from((*ACCOUNTS, None)))
    if choice == "cancel":
        return c.CancelOrder(order_id=order_id, account_id=account)
    if choice == "retrail":
        if draw(st.booleans()):
            return c.AmendOrder(order_id=order_id, trail_percent=draw(st.sampled_from(TRAIL_PERCENTS)))
        market = draw(st.sampled_from(tuple(MID)))
        return c.AmendOrder(order_id=order_id, trail_price=STEP[market] * draw(st.integers(1, 4)))
    if choice == "amend":
        price = draw(st.one_of(st.none(), st.integers(-6, 6)))
        quantity = draw(st.one_of(st.none(), st.integers(1, 40)))
        market = draw(st.sampled_from(("BTC-USD", "BTC-PERP")))
        return c.AmendOrder(
            order_id=order_id,
            account_id=account,
            price=None if price is None else STEP[market] * (MID[market] + price),
            quantity=None if quantity is None else LOT[market] * quantity,
        )
    if choice == "cancel_all":
        return c.CancelAll(
            account_id=draw(st.sampled_from(ACCOUNTS)), market=draw(st.sampled_from((None, "BTC-USD")))
        )
    if choice == "time":
        return c.AdvanceTime(ts=draw(st.integers(0, 3)) * 86_400 * 10**9)
    market = draw(st.sampled_from(("BTC-USD", "BTC-PERP")))
    return c.MarkPrice(market=market, price=STEP[market] * (MID[market] + draw(st.integers(-5, 5))))


def command_streams(min_size: int = 10, max_size: int = 80) -> st.SearchStrategy[list[c.Command]]:
    one_command = st.one_of(place_orders(), place_orders(), place_orders(), other_commands())
    return st.lists(one_command, min_size=min_size, max_size=max_size)


def finishing_commands() -> st.SearchStrategy[list[c.Command]]:
    return st.sampled_from(
        (
            [],
            [c.SettleMarket(market="FED-CUT", outcome="yes")],
            [c.SettleMarket(market="FED-CUT", outcome="no")],  # type: ignore[arg-type]
            [c.VoidMarket(market="FED-CUT")],
        )
    )


def check_invariants(engine: Engine) -> None:
    """The core's invariants (docs/engine.md) after any command."""
    assert engine.state.hold_shortfall == 0, "a fill consumed more than its order held"
    for currency, total in engine.ledger.totals().items():
        assert total == 0, f"{currency} not conserved: {total}"
    expected_held: dict[tuple[str, str], int] = {}
    reserved: dict[tuple[str, str], list[int]] = {}
    for order in engine.orders.values():
        assert 0 <= order.filled < order.quantity
        assert order.remaining == order.quantity - order.filled
        assert order.status in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED, OrderStatus.PENDING_TRIGGER)
        delayed = order in engine.markets[order.market].quote.delayed
        assert (order.in_book or delayed) == (order.status is not OrderStatus.PENDING_TRIGGER)
        assert order.hold >= 0 and 0 <= order.covered <= order.remaining
        key = (order.account_id, order.hold_currency)
        expected_held[key] = expected_held.get(key, 0) + order.hold
        pair = reserved.setdefault((order.account_id, order.market), [0, 0])
        pair[0 if order.side is Side.BUY else 1] += order.covered
    for market in engine.markets.values():
        bid, ask = market.book.best_bid(), market.book.best_ask()
        assert bid is None or ask is None or bid < ask, f"{market.symbol} crossed: {bid} >= {ask}"
        in_book = {
            o.order_id
            for o in market.book.orders() + list(market.quote.paper_bids) + list(market.quote.paper_asks)
        }
        assert in_book == {
            o.order_id for o in engine.orders.values() if o.market == market.symbol and o.in_book
        }
        long_interest = 0
        for account_id, position in market.positions.items():
            assert [position.reserved_buy, position.reserved_sell] == reserved.get(
                (account_id, market.symbol), [0, 0]
            )
            assert position.reserved_sell <= max(position.quantity, 0)
            assert position.reserved_buy <= max(-position.quantity, 0)
            if market.kind is MarketKind.PERP:
                key = (account_id, market.spec.quote)
                expected_held[key] = expected_held.get(key, 0) + position.margin
            long_interest += max(position.quantity, 0)
        if market.kind is MarketKind.BINARY:
            pool = engine.accounts.get(market.terms.collateral_id)
            locked = 0 if pool is None else pool.balance(market.spec.quote).total
            assert locked == long_interest * market.terms.notional.round(market.terms.payout_ticks)
    check_stop_books(engine)
    check_contingent(engine)
    for account in engine.accounts.values():
        for currency, balance in account.balances.items():
            assert balance.held == expected_held.get((account.account_id, currency), 0), (
                account.account_id,
                currency,
            )
            if not account.account_id.startswith("system:"):
                assert balance.total - balance.held >= 0, f"{account.account_id} {currency} available < 0"


def check_stop_books(engine: Engine) -> None:
    """Every pending stop waits in exactly the list its state says; on an open market a trailing stop's
    watermark is at or beyond its trigger price now, its stop is the one the watermark gives and has
    not been reached, and a waiting one has no price or has not reached its activation price."""
    for market in engine.markets.values():
        book = market.stops
        pending = [
            o
            for o in engine.orders.values()
            if o.market == market.symbol and o.status is OrderStatus.PENDING_TRIGGER
        ]
        trailing = [o for o in pending if o.type is OrderType.TRAILING_STOP]
        assert book.size == len(pending) and book.trailing == len(trailing)
        assert book.trailing_by_rank == [
            sum(1 for o in trailing if TRIGGER_RANK[o.trigger] == rank) for rank in range(len(TRIGGER_RANK))
        ]
        assert book.on_last == sum(1 for o in pending if o.trigger is StopTrigger.LAST)
        last = market.last_price
        if book.quiet and book.quiet_last == last and last is not None and market.status is MarketStatus.OPEN:
            # a scan skipped as quiet would have found nothing to fire
            assert not any(
                o.stop_price is not None
                and (last >= o.stop_price if o.side is Side.BUY else last <= o.stop_price)
                for o in pending
            )
        assert {o.order_id for o in book.orders()} == {o.order_id for o in pending}
        assert {o.order_id for o in (*book.trailing_buy, *book.trailing_sell)} == {
            o.order_id for o in trailing if o.hwm is not None
        }
        for order in trailing:
            source = trigger_price(market, order.trigger, order.side)
            if order.hwm is None:
                assert order.stop_price is None
                activation = order.activation_price
                if market.status is MarketStatus.OPEN and source is not None:
                    assert activation is not None
                    assert source < activation if order.side is Side.SELL else source > activation
                continue
            assert order.stop_price == trailing_stop_price(market, order, order.hwm)
            if market.status is not MarketStatus.OPEN or source is None:
                continue
            if order.side is Side.SELL:
                assert order.hwm >= source > order.stop_price, (order, source)
            else:
                assert order.hwm <= source < order.stop_price, (order, source)


def check_contingent(engine: Engine) -> None:
    """Contingent exits: reduce-only off spot; a waiting pair has equal rests, its take-profit (a
    resting limit) holds for both and covers the whole rest (perp, binary) or holds its base (spot),
    and its stop-loss waits holding nothing, so no pair holds twice or can close more than it holds."""
    orders = engine.orders
    for order in orders.values():
        market = engine.markets[order.market]
        exit_leg = order.parent_order_id is not None or order.order_class is OrderClass.OCO
        if exit_leg and market.kind is not MarketKind.SPOT:
            assert order.reduce_only, order
        if order.oco_with is None:
            continue
        sibling = orders[order.oco_with]
        assert sibling.oco_with == order.order_id
        assert sibling.remaining == order.remaining, (order, sibling)
        if order.type is OrderType.LIMIT:
            assert sibling.status is OrderStatus.PENDING_TRIGGER
            assert sibling.hold == 0 and sibling.covered == 0
            if market.kind is MarketKind.SPOT:
                assert order.hold == order.remaining * market.terms.base_per_lot
            else:
                assert order.covered == order.remaining
