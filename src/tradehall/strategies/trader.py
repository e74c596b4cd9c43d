"""The one path from market data to orders, shared by backtests and live sessions.

`Trader` feeds each event to every strategy, combines their signals into one decision per market
(weighted vote, `min_confidence`, validators), sizes entries with the risk manager and sends orders
through an `OrderSink`. A backtest's sink is its own engine; a live session's is the service. Both
call the same methods in the same order on the same data, which is what makes a backtest and a
paper session agree on orders and fills.

Client order ids are derived from the run's prefix, the market and the decision's time, so a session
that restarts and re-decides the same bar sends the same ids (the engine refuses a duplicate).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from tradehall.strategies.base import OrderSink, Portfolio, Strategy, StrategyContext
from tradehall.strategies.combiner import Combiner, Decision, MarketState
from tradehall.strategies.indicators import RollingStd
from tradehall.strategies.risk import RiskManager
from tradehall.strategies.types import (
    Action,
    Bar,
    FillReport,
    OrderRequest,
    OrderUpdate,
    QuoteTick,
    Signal,
    TradeTick,
)

TERMINAL_STATUSES = frozenset({"filled", "cancelled", "expired", "rejected"})
VOLATILITY_BARS = 20


@dataclass(slots=True)
class Member:
    strategy: Strategy
    weight: float = 1.0


class _MarketTrack:
    __slots__ = (
        "ask", "ask_depth", "bid", "bid_depth", "data_ts", "last_close", "price", "returns", "volume"
    )

    def __init__(self) -> None:
        self.price = 0.0
        self.data_ts = 0
        self.bid: float | None = None
        self.ask: float | None = None
        self.bid_depth: float | None = None
        self.ask_depth: float | None = None
        self.volume: float | None = None
        self.last_close: float | None = None
        self.returns = RollingStd(VOLATILITY_BARS)


class Trader:
    def __init__(
        self,
        members: Sequence[Member],
        combiner: Combiner,
        risk: RiskManager,
        portfolio: Portfolio,
        orders: OrderSink,
        *,
        client_id_prefix: str = "th",
        order_type: str = "market",
        on_signal: Callable[[Signal, int], None] | None = None,
        on_decision: Callable[[Decision], None] | None = None,
    ) -> None:
        if order_type not in ("market", "limit"):
            raise ValueError("order_type is market or limit")
        self.members = list(members)
        self.combiner = combiner
        self.risk = risk
        self.portfolio = portfolio
        self.orders = orders
        self.prefix = client_id_prefix
        self.order_type = order_type
        self.now = 0
        self.on_signal = on_signal
        self.on_decision = on_decision
        self.context = StrategyContext(self._clock, portfolio, orders)
        self._tracks: dict[str, _MarketTrack] = {}
        self._pending: dict[str, set[str]] = {}
        self._watch_equity = risk.settings.max_drawdown is not None or risk.settings.weekly_target is not None
        self._single = self.members[0].strategy if len(self.members) == 1 else None
        self._track_volatility = any(v.name == "volatility" for v in combiner.validators)

    def _clock(self) -> int:
        return self.now

    # --- lifecycle ------------------------------------------------------------------------------

    def start(self) -> None:
        for member in self.members:
            member.strategy.bind(self.context)
        for member in self.members:
            member.strategy.on_start()

    def stop(self) -> None:
        for member in self.members:
            member.strategy.on_stop()

    # --- market data ------------------------------------------------------------------------------

    def _track(self, market: str) -> _MarketTrack:
        track = self._tracks.get(market)
        if track is None:
            track = self._tracks[market] = _MarketTrack()
        return track

    def warmup(self, market: str, bar: Bar) -> None:
        """A bar from history (a restarted session rebuilding its indicators): the strategies and the
        market's track see it; nothing is decided, sent or counted against the risk limits."""
        self.now = bar.end
        self._observe(market, bar)
        for member in self.members:
            member.strategy.on_bar(market, bar)

    def _observe(self, market: str, bar: Bar) -> None:
        track = self._tracks.get(market) or self._track(market)
        if self._track_volatility:
            previous = track.last_close
            if previous:
                track.returns.update(bar.close / previous - 1.0)
        track.last_close = track.price = bar.close
        track.data_ts = bar.end
        track.volume = bar.volume

    def on_bar(self, market: str, bar: Bar) -> Decision | None:
        """A closed bar: every strategy sees it at its close time; then one decision, if anyone spoke."""
        self.now = bar.end
        self._observe(market, bar)
        if self._watch_equity:
            self.risk.on_equity(bar.end, self.portfolio.equity())
        single = self._single
        if single is not None:
            signal = single.on_bar(market, bar)
            if signal is None:
                return None
            signals = [signal]
        else:
            signals = []
            for member in self.members:
                signal = member.strategy.on_bar(market, bar)
                if signal is not None:
                    signals.append(signal)
            if not signals:
                return None
        return self._decide(market, signals)

    def on_quote(self, quote: QuoteTick) -> Decision | None:
        self.now = quote.ts
        track = self._track(quote.market)
        track.bid, track.ask, track.data_ts = quote.bid, quote.ask, quote.ts
        track.bid_depth = _depth(quote.bids, quote.bid_size)
        track.ask_depth = _depth(quote.asks, quote.ask_size)
        if quote.bid is not None and quote.ask is not None:
            track.price = (quote.bid + quote.ask) / 2
        signals = [s for m in self.members if (s := m.strategy.on_quote(quote)) is not None]
        return self._decide(quote.market, signals) if signals else None

    def on_trade(self, trade: TradeTick) -> Decision | None:
        self.now = trade.ts
        track = self._track(trade.market)
        track.price, track.data_ts = trade.price, trade.ts
        signals = [s for m in self.members if (s := m.strategy.on_trade(trade)) is not None]
        return self._decide(trade.market, signals) if signals else None

    def on_order(self, update: OrderUpdate) -> None:
        if update.status in TERMINAL_STATUSES and update.client_order_id is not None:
            pending = self._pending.get(update.market)
            if pending:
                pending.discard(update.client_order_id)
        for member in self.members:
            member.strategy.on_order(update)

    def on_fill(self, fill: FillReport) -> None:
        for member in self.members:
            member.strategy.on_fill(fill)

    # --- deciding and acting --------------------------------------------------------------------------

    def market_state(self, market: str) -> MarketState:
        track = self._track(market)
        return MarketState(
            market=market,
            ts=self.now,
            price=track.price,
            data_ts=track.data_ts,
            bid=track.bid,
            ask=track.ask,
            bid_depth=track.bid_depth,
            ask_depth=track.ask_depth,
            volume=track.volume,
            volatility=track.returns.value,
        )

    def _decide(self, market: str, signals: list[Signal]) -> Decision:
        now = self.now
        if self.on_signal is not None:
            for signal in signals:
                self.on_signal(signal, now)
        decision = self.combiner.vote(market, signals, now)
        if decision.action is not Action.HOLD:
            self._act(decision)
        if self.on_decision is not None:
            self.on_decision(decision)
        return decision

    def _act(self, decision: Decision) -> None:
        market = decision.market
        held = self.portfolio.position(market)
        buying = decision.action is Action.BUY
        if (held > 0 and buying) or (held < 0 and not buying):
            decision.reason = _join(decision.reason, "position already open")
            return
        if self._pending.get(market):
            decision.reason = _join(decision.reason, "an entry is still pending")
            return
        decision.opening = held == 0
        if decision.opening and not buying and not self.risk.settings.allow_short:
            decision.reason = _join(decision.reason, "no short entries (allow_short is off)")
            return
        counted = _WithPending(self.portfolio, self._pending)
        self.combiner.validate(decision, self.market_state(market), counted)
        if decision.vetoed_by is not None:
            return
        stamp = f"{self.prefix}-{market}-{decision.ts // 1_000_000}"
        if not decision.opening:
            self.orders.cancel_all(market)  # the position's exit orders go with it
            client_id = self.orders.submit(
                OrderRequest(
                    market=market,
                    side="buy" if buying else "sell",
                    quantity=abs(held),
                    reduce_only=True,
                    client_order_id=f"{stamp}-x",
                    tag="close",
                )
            )
            decision.order_ids.append(client_id)
            return
        price = decision.price if decision.price is not None else self._track(market).price
        side = "buy" if buying else "sell"
        exits = self.risk.exits(side, price)
        quantity = self.risk.size(price, self.portfolio.equity(), exits.stop_loss)
        if quantity <= 0:
            decision.vetoed_by, decision.veto_reason = "risk_limits", "position size rounds to nothing"
            return
        entry_id = f"{stamp}-e"
        pending = self._pending.setdefault(market, set())
        pending.add(entry_id)  # before sending: an order may fill (and end) while it is being sent
        client_id = self.orders.submit(
            OrderRequest(
                market=market,
                side=side,
                quantity=quantity,
                type=self.order_type,
                price=price if self.order_type == "limit" else None,
                take_profit=exits.take_profit,
                stop_loss=exits.stop_loss,
                trail_percent=exits.trail_percent,
                client_order_id=entry_id,
                tag="entry",
            )
        )
        decision.order_ids.append(client_id)


class _WithPending:
    """The portfolio as validators count it: a market whose entry is still on its way counts as an
    open position (two entries in one cycle must not both pass `max_positions`)."""

    __slots__ = ("_pending", "_portfolio")

    def __init__(self, portfolio: Portfolio, pending: dict[str, set[str]]) -> None:
        self._portfolio = portfolio
        self._pending = pending

    def position(self, market: str) -> float:
        return self._portfolio.position(market)

    def open_positions(self) -> int:
        waiting = sum(1 for m, ids in self._pending.items() if ids and self._portfolio.position(m) == 0)
        return self._portfolio.open_positions() + waiting


def _depth(levels: tuple[tuple[float, float | None], ...], top: float | None) -> float | None:
    if not levels:
        return top
    total = 0.0
    for _, size in levels:
        if size is None:
            return None
        total += size
    return total


def _join(first: str, second: str) -> str:
    return f"{first}; {second}" if first else second
