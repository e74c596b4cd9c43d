"""The engine's per-command bookkeeping (issue 12): the touched-books set and the per-market order index.

`Engine._finish` emits book changes only for `books_touched`, and a status change ends a market's
orders from `orders_by_market`; both are only right if they never miss a book or an order."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.engine_support.streams import command_streams, finishing_commands, setup_commands
from tradehall.domain import commands as c
from tradehall.domain.enums import MarketStatus
from tradehall.engine import Engine

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OWN_BOOK_CHANGES = (c.PlaceOrder, c.CancelOrder, c.AmendOrder)
STATUS_CHANGES = st.lists(
    st.tuples(
        st.integers(0, 80),
        st.sampled_from(("BTC-USD", "BTC-PERP")),
        st.sampled_from((MarketStatus.HALTED, MarketStatus.OPEN, MarketStatus.CLOSED)),
    ),
    max_size=3,
)


def check_index(engine: Engine) -> None:
    expected: dict[str, set[int]] = {}
    for order_id, order in engine.orders.items():
        expected.setdefault(order.market, set()).add(order_id)
    indexed = {symbol: ids for symbol, ids in engine.state.orders_by_market.items() if ids}
    assert indexed == expected


@SETTINGS
@given(stream=command_streams(), finish=finishing_commands(), statuses=STATUS_CHANGES)
def test_no_book_change_is_left_behind_and_the_order_index_matches(
    stream: list[c.Command],
    finish: list[c.Command],
    statuses: list[tuple[int, str, MarketStatus]],
) -> None:
    commands = list(stream)
    for index, symbol, status in sorted(statuses, reverse=True):
        commands.insert(min(index, len(commands)), c.SetMarketStatus(market=symbol, status=status))
    engine = Engine()
    for command in setup_commands() + commands + finish:
        engine.apply(command)
        if not isinstance(command, OWN_BOOK_CHANGES):
            # the sweep visited every book that changed: none has a change left to report
            assert not [m.symbol for m in engine.markets.values() if m.book.has_changes()]
            assert not engine.state.books_touched
        check_index(engine)
    restored = Engine.restore(engine.snapshot())
    check_index(restored)
    assert restored.state_hash() == engine.state_hash()
