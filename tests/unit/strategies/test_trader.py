"""The Trader: warm-up without decisions, entries in flight counted against max_positions, closes."""

from __future__ import annotations

from tradehall.strategies import (
    Action,
    Bar,
    Combiner,
    MaxPositionsValidator,
    Member,
    OrderRequest,
    RiskManager,
    RiskSettings,
    Signal,
    Strategy,
    Trader,
)
from tradehall.strategies.builtin import SmaCrossover

MINUTE = 60 * 10**9


class Book:
    """A portfolio and an order sink that records what it is sent (fills come when the test says)."""

    def __init__(self) -> None:
        self.positions: dict[str, float] = {}
        self.sent: list[OrderRequest] = []
        self.cancelled: list[str] = []

    def position(self, market: str) -> float:
        return self.positions.get(market, 0.0)

    def entry_price(self, market: str) -> float | None:
        return None

    def equity(self) -> float:
        return 10_000.0

    def cash(self) -> float:
        return 10_000.0

    def open_positions(self) -> int:
        return sum(1 for q in self.positions.values() if q)

    def submit(self, request: OrderRequest) -> str:
        self.sent.append(request)
        return request.client_order_id or "x"

    def cancel(self, client_order_id: str) -> None:
        self.cancelled.append(client_order_id)

    def cancel_all(self, market: str) -> None:
        self.cancelled.append(f"all:{market}")


class Always(Strategy):
    name = "always"

    def on_bar(self, market: str, bar: Bar) -> Signal | None:
        return self.signal(market, Action.BUY, 1.0, bar.close, "always")


def bar(i: int, close: float) -> Bar:
    return Bar(i * MINUTE, close, close, close, close, 1.0, (i + 1) * MINUTE)


def trader(strategy: Strategy, book: Book, **risk: object) -> Trader:
    settings = RiskSettings(order_quantity=1.0, **risk)  # type: ignore[arg-type]
    manager = RiskManager(settings)
    combined = Combiner(validators=[MaxPositionsValidator(settings.max_positions)])
    t = Trader([Member(strategy)], combined, manager, book, book, client_id_prefix="ses_1")
    t.start()
    return t


def test_warmup_rebuilds_indicators_without_deciding() -> None:
    book = Book()
    strategy = SmaCrossover({"fast": 2, "slow": 3})
    t = trader(strategy, book)
    closes = [10, 10, 10, 11, 12, 13, 12, 11, 10]
    for i, c in enumerate(closes[:7]):
        t.warmup("BTC-USD", bar(i, c))
    assert book.sent == []
    decision = t.on_bar("BTC-USD", bar(7, 11))  # the crossing bar: the warmed-up averages see it
    assert decision is not None and decision.action is Action.SELL


def test_an_entry_in_flight_counts_against_max_positions() -> None:
    book = Book()
    t = trader(Always(), book, max_positions=1)
    first = t.on_bar("BTC-USD", bar(0, 100.0))
    second = t.on_bar("ETH-USD", bar(0, 10.0))
    assert first is not None and first.order_ids == ["ses_1-BTC-USD-60000-e"]
    assert second is not None and second.vetoed_by == "max_positions"
    assert second.veto_reason == "1 open position(s), max_positions 1"
    assert [r.market for r in book.sent] == ["BTC-USD"]


def test_an_opposite_signal_cancels_the_exits_and_closes() -> None:
    book = Book()

    class Seller(Strategy):
        name = "seller"

        def on_bar(self, market: str, b: Bar) -> Signal | None:
            return self.signal(market, Action.SELL, 1.0, b.close, "sell")

    book.positions["BTC-USD"] = 2.0
    t = trader(Seller(), book)
    decision = t.on_bar("BTC-USD", bar(3, 100.0))
    assert decision is not None and decision.order_ids == ["ses_1-BTC-USD-240000-x"]
    assert book.cancelled == ["all:BTC-USD"]
    (close,) = book.sent
    assert (close.side, close.quantity, close.reduce_only, close.type) == ("sell", 2.0, True, "market")
