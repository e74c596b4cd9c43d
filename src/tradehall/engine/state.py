"""The engine's shared state: configuration, registries, ids, time and the event buffer.

Every component takes this one object in `__init__` and keeps direct references to the registries
it uses (`self._orders = state.orders`); the scalars that change (`now`, the id counters, `config`)
are read through the state object so every component sees the same value. Nothing here decides a
rule: lookups that refuse (`trader`, `market`) and the order registry's bookkeeping only.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from heapq import heappush
from typing import Final, TypeVar

from tradehall.domain.enums import TransferStatus
from tradehall.domain.errors import invalid_order, not_found
from tradehall.domain.events import AnyEvent, BookChanged
from tradehall.domain.fixedpoint import format_money
from tradehall.domain.market import instrument_of
from tradehall.engine.book import OrderBook
from tradehall.engine.config import EngineConfig
from tradehall.engine.constants import SPOT, SYSTEM_KIND
from tradehall.engine.ledger import Account, Ledger
from tradehall.engine.markets import Book, Market
from tradehall.engine.orders import Order
from tradehall.engine.positions import Position

# Event classes bound once: compiled, a `Final` is read from a C static, an imported class from the
# module dict at every construction.
_BOOK_CHANGED: Final = BookChanged

DAY_NS: Final = 86_400 * 1_000_000_000
_EnumT = TypeVar("_EnumT", bound=StrEnum)


def enum_of(kind: type[_EnumT], value: object, what: str) -> _EnumT:
    """A command's enum field as the enum; a value outside it is a refusal, never a crash."""
    if value.__class__ is kind:
        return value
    try:
        return kind(value)  # type: ignore[arg-type]
    except ValueError:
        raise invalid_order(f"{what} {value!r} is not one of {[m.value for m in kind]}") from None


def by_order_id(order: Order) -> int:
    return order.order_id


class Route:
    """A smart order whose children may still be open: the parent's owner and its children's ids."""

    __slots__ = ("account_id", "children", "parent_id")

    def __init__(self, parent_id: int, account_id: str, children: list[int]) -> None:
        self.parent_id = parent_id
        self.account_id = account_id
        self.children = children


class Transfer:
    """One cross-shard transfer as this shard's engine holds it (`transfers.py`); `amount` in minor units,
    `side` "out" (this shard is the source) or "in"."""

    __slots__ = ("account_id", "amount", "currency", "peer", "reason", "side", "status", "transfer_id")

    def __init__(
        self,
        transfer_id: str,
        side: str,
        account_id: str,
        currency: str,
        amount: int,
        peer: str,
        status: TransferStatus,
        reason: str = "",
    ) -> None:
        self.transfer_id = transfer_id
        self.side = side
        self.account_id = account_id
        self.currency = currency
        self.amount = amount
        self.peer = peer
        self.status = status
        self.reason = reason


class EngineState:
    """Registries (accounts, markets, orders, client order ids), ids, time and the event buffer.

    `events` is the current command's list: `Engine.apply` puts a new one here for each command and
    returns it; components append through the state (`self._state.events`), never keeping the list.
    `dirty_positions` collects the positions a command changed for its summary events.
    `books_touched` names the markets whose book changed since the last sweep (`Engine._finish`
    emits only those), and `orders_by_market` indexes open order ids per market, so neither the
    sweep nor a status change visits every market or order. `contingent_pending` collects the
    contingent orders (brackets, oco, oto) that filled or ended since `Contingent.settle` last ran.
    `hold_shortfall` sums what fills would have consumed beyond their order's hold (minor units); the
    holds invariant (`holds.py`) keeps it at zero, and the property tests check that it stays there.
    `replaying` (`Engine.replaying`, journal recovery) skips building the summary events (balances,
    positions, books) and order ends that nobody reads in a replay; the state changes stay the same.
    """

    def __init__(self, config: EngineConfig, book_factory: Callable[[], Book] = OrderBook) -> None:
        self.config = config
        self.book_factory = book_factory
        self.ledger = Ledger()
        self.accounts: dict[str, Account] = self.ledger.accounts
        self.markets: dict[str, Market] = {}
        self.orders: dict[int, Order] = {}
        self.client_order_ids: dict[tuple[str, str], int] = {}
        self.client_order_fingerprints: dict[tuple[str, str], bytes] = {}
        self.now = 0
        self.next_order_id = 1
        self.next_trade_id = 1
        self.priority = 0
        self.expiries: list[tuple[int, int]] = []
        self.events: list[AnyEvent] = []
        self.dirty_positions: dict[tuple[str, str], Position] = {}
        self.books_touched: set[str] = set()
        self.orders_by_market: dict[str, set[int]] = {}
        self.contingent_pending: list[Order] = []
        self.next_reset: int | None = None
        self.hold_shortfall = 0
        self.replaying = False
        self._spot_index: dict[tuple[str, str], Market] = {}
        self._spot_index_size = -1
        self.routes: dict[int, Route] = {}  # smart orders with open children, by parent id
        self.transfers: dict[str, Transfer] = {}  # cross-shard transfers by id (`transfers.py`)
        self._venue_index: dict[str, list[Market]] = {}
        self._venue_index_size = -1

    # --- lookups that refuse -------------------------------------------------------------

    def trader(self, account_id: str) -> Account:
        account = self.accounts.get(account_id)
        if account is None or account.kind is SYSTEM_KIND:
            raise not_found(f"account {account_id} not found")
        return account

    def market(self, symbol: str) -> Market:
        market = self.markets.get(symbol)
        if market is None:
            raise not_found(f"market {symbol} not found")
        return market

    def money(self, minor: int, currency: str, bare: bool = False) -> str:
        """An amount for a message, in the currency's units ("3,030.00 USD"; `bare`: "3,030.00")."""
        text = format_money(minor, currency, self.config.decimals(currency))
        return text.rsplit(" ", 1)[0] if bare else text

    def spot_market_for(self, asset: str, currency: str) -> Market | None:
        """The spot market that prices `asset` in `currency` (the first by symbol when several do).

        The index is rebuilt when a market was added (markets are never removed), so a restored
        engine needs nothing special."""
        if len(self.markets) != self._spot_index_size:
            index: dict[tuple[str, str], Market] = {}
            for symbol in sorted(self.markets, reverse=True):
                market = self.markets[symbol]
                if market.kind is SPOT:
                    index[(market.spec.base, market.spec.quote)] = market
            self._spot_index = index
            self._spot_index_size = len(self.markets)
        return self._spot_index.get((asset, currency))

    def venues_of(self, instrument: str) -> list[Market]:
        """The markets listing `instrument`, by symbol (rebuilt like the spot index when a market was
        added, so a restored engine needs nothing special)."""
        if len(self.markets) != self._venue_index_size:
            index: dict[str, list[Market]] = {}
            for symbol in sorted(self.markets):
                market = self.markets[symbol]
                index.setdefault(instrument_of(market.spec), []).append(market)
            self._venue_index = index
            self._venue_index_size = len(self.markets)
        return self._venue_index.get(instrument, [])

    # --- the order registry ----------------------------------------------------------------

    def register(self, order: Order, account: Account) -> None:
        self.orders[order.order_id] = order
        account.open_orders[order.order_id] = order
        ids = self.orders_by_market.get(order.market)
        if ids is None:
            ids = self.orders_by_market[order.market] = set()
        ids.add(order.order_id)
        if order.expire_at is not None:
            heappush(self.expiries, (order.expire_at, order.order_id))

    def unregister(self, order: Order, account: Account) -> None:
        del self.orders[order.order_id]
        del account.open_orders[order.order_id]
        self.orders_by_market[order.market].discard(order.order_id)

    def open_orders_of(self, account: Account) -> list[Order]:
        """The account's open orders in order-id order."""
        orders: list[Order] = list(account.open_orders.values())  # type: ignore[arg-type]
        orders.sort(key=by_order_id)
        return orders

    @staticmethod
    def position(market: Market, account: Account) -> Position:
        """The account's position in `market`, created (flat) on first use."""
        position = market.positions.get(account.account_id)
        if position is None:
            position = market.position(account.account_id, account.cost_basis)
            account.positions[market.symbol] = position
        return position

    def market_orders(self, symbol: str) -> list[Order]:
        """The market's open orders in order-id order (from the per-market index, not a scan)."""
        orders = self.orders
        return [orders[order_id] for order_id in sorted(self.orders_by_market.get(symbol, ()))]

    def emit_book_changes(self, market: Market) -> None:
        bids, asks = market.book.take_changes()
        if bids or asks:
            market.book_sequence += 1
            if self.replaying:
                return
            book = market.book
            self.events.append(
                _BOOK_CHANGED(
                    market=market.symbol,
                    sequence=market.book_sequence,
                    bids=bids,
                    asks=asks,
                    best_bid=book.best_bid(),
                    best_ask=book.best_ask(),
                )
            )
