"""A backtest: the strategies, the combiner and the risk manager of a session (`Trader`), driven by
recorded data through a real engine (`EngineBroker`).

Bars (CSV/Parquet/candles) are replayed as four quotes, open then the two extremes then close, the
extreme nearer the open first (a tie: a bar that closed up visits its low first, one that closed down
its high), at the first four fifths of the bar; the strategies see the bar at its end. Between two of
those prices the path also quotes every open stop or limit price of the account that lies between
them, in the order it meets them. So a stop or a limit inside a bar fills where the path crosses it
(at its price, plus the venue's slippage), a gap fills at the price after the gap, and an
order decided at a bar's end fills on later data only (with the fill model's latency, at the next
bar's open). Quotes that can change nothing (no open order of the account, and no position that marks
could close out) are not sent: the engine would ignore them, and skipping them makes long
backtests fast; `eager=True` sends every one (a test shows both give the same fills).

Recorded feed events go to the engine as the service's router sends a live feed's: quotes as they
were recorded (with their sizes), trades not at all; bars of `interval` (windows aligned to the epoch)
are built from the quotes' mids (a one-sided quote's last), as a live session on a quote venue builds
its bars; recorded trades reach the strategies' `on_trade` only.

Nothing here reads a clock or draws an unseeded random number: the same inputs give the same report.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import msgspec

from tradehall.domain.enums import MarketKind
from tradehall.domain.errors import invalid_request
from tradehall.domain.market import MarketSpec
from tradehall.engine import EngineConfig, views
from tradehall.marketdata.models import Quote, TradeTick
from tradehall.strategies.backtest.broker import ACCOUNT, EngineBroker, Fill, OrderRecord
from tradehall.strategies.backtest.config import (
    DEFAULT_INITIAL_BALANCE,
    BacktestSettings,
    FillModel,
    StrategyChoice,
    spec_for_data,
)
from tradehall.strategies.backtest.data import Ohlcv
from tradehall.strategies.bars import BarBuilder, interval_ns
from tradehall.strategies.base import Strategy
from tradehall.strategies.combiner import Combiner, Decision
from tradehall.strategies.registry import StrategyRegistry, default_registry
from tradehall.strategies.risk import RiskManager
from tradehall.strategies.trader import Member, Trader
from tradehall.strategies.types import Bar, QuoteTick, Signal
from tradehall.strategies.types import TradeTick as StrategyTradeTick

__all__ = [
    "DEFAULT_INITIAL_BALANCE",
    "Backtest",
    "BacktestResult",
    "BacktestSettings",
    "FillModel",
    "StrategyChoice",
    "spec_for_data",
]

MAX_DECISIONS_KEPT = 10_000


@dataclass(slots=True)
class BacktestResult:
    """What a run leaves for the report: fills, orders, the equity at every bar, decisions."""

    market: str
    spec: MarketSpec
    settings: BacktestSettings
    fill_model: FillModel
    strategies: list[dict[str, Any]]
    seed: int
    initial_balance: Decimal
    equity: list[tuple[int, float]]
    exposure_bars: int
    bars: int
    fills: list[Fill]
    orders: list[OrderRecord]
    decisions: list[dict[str, Any]]
    signals: int
    vetoes: int
    rejections: list[dict[str, Any]]
    warnings: list[str]
    fees: Decimal
    prices: list[tuple[int, float]]
    start: int
    end: int


class Backtest:
    def __init__(
        self,
        strategies: Sequence[StrategyChoice],
        spec: MarketSpec,
        settings: BacktestSettings | None = None,
        fill_model: FillModel | None = None,
        *,
        seed: int = 0,
        registry: StrategyRegistry | None = None,
        eager: bool = False,
        progress: Callable[[float], None] | None = None,
    ) -> None:
        if not strategies:
            raise invalid_request("a backtest needs at least one strategy")
        registry = registry or default_registry()
        self.settings = settings or BacktestSettings()
        self.fill_model = fill_model or FillModel()
        self.seed = seed
        self.eager = eager
        self.progress = progress
        self.choices = list(strategies)
        built: list[Strategy] = [registry.create(c.name, c.parameters) for c in self.choices]
        names = [s.name for s in built]
        if len(set(names)) != len(names):
            raise invalid_request("a strategy may appear once per backtest")
        self.spec = self.fill_model.apply(spec)
        self.symbol = spec.symbol
        interval_hint = self.settings.interval
        max_age = max(10_000, 3 * interval_ns(interval_hint) // 1_000_000) if interval_hint else 10**12
        config = EngineConfig(quote_max_age_ms=max_age)
        self.spec = msgspec.structs.replace(self.spec, quote_max_age_ms=max_age)
        self.broker = broker = EngineBroker(self.spec, self.settings.initial_balance, engine_config=config)
        self.risk = RiskManager(self.settings.risk)
        combiner = Combiner({c.name: c.weight for c in self.choices}, self.settings.min_confidence,
                            self.settings.validators(self.risk))
        self.decisions: list[dict[str, Any]] = []
        self.signal_count = 0
        self.veto_count = 0
        self.trader = Trader(
            [Member(s, c.weight) for s, c in zip(built, self.choices, strict=True)],
            combiner,
            self.risk,
            broker,
            broker,
            client_id_prefix="bt",
            order_type=self.settings.order_type,
            on_signal=self._signal,
            on_decision=self._decision,
        )
        self.trader.context.random.seed(seed)
        broker.on_fill = self.trader.on_fill
        broker.on_order = self.trader.on_order
        self._strategies = built

    def _signal(self, signal: Signal, ts: int) -> None:
        self.signal_count += 1

    def _decision(self, decision: Decision) -> None:
        if decision.vetoed_by is not None:
            self.veto_count += 1
        if len(self.decisions) < MAX_DECISIONS_KEPT and (decision.order_ids or decision.vetoed_by):
            self.decisions.append(decision.as_dict())

    # --- bars -------------------------------------------------------------------------------------------

    def run_ohlcv(self, data: Ohlcv) -> BacktestResult:
        n = len(data)
        if n == 0:
            raise invalid_request("the data has no bars")
        width = interval_ns(self.settings.interval) if self.settings.interval else data.interval_ns()
        if width is None:
            raise invalid_request("one bar: give settings.interval")
        broker, trader, symbol = self.broker, self.trader, self.symbol
        spot = self.spec.kind is MarketKind.SPOT
        eager = self.eager
        spread = float(self.fill_model.spread)
        depth = self.fill_model.depth
        price_of = broker.price_of
        step = width // 5
        ts_col, o_col, h_col, l_col = data.ts, data.open, data.high, data.low
        c_col, v_col = data.close, data.volume
        values: list[float] = []
        exposure = 0
        open_ids = broker.open_order_ids
        perp = not spot
        sent = [-1]  # the bar whose close the engine last got
        current = [0]  # the bar being decided on

        def send(ts: int, price: float, volume: float) -> None:
            if spread:
                bid, ask = price_of(price * (1 - spread / 2)), price_of(price * (1 + spread / 2))
            else:
                bid = ask = price_of(price)
            size = None if depth is None else broker.quantity_of(volume) * depth
            broker.quote(ts, bid, ask, price_of(price), size, size)

        def ensure_close() -> None:
            i = current[0]
            if sent[0] != i:
                sent[0] = i
                send(ts_col[i] + 4 * step, c_col[i], v_col[i] / 4)

        broker.before_order = ensure_close
        trader.start()
        progress = self.progress
        report_every = max(1, n // 100)
        on_bar = trader.on_bar
        append = values.append
        equity_of = broker.equity
        for i in range(n):
            t = ts_col[i]
            o, h, lo, c, v = o_col[i], h_col[i], l_col[i], c_col[i], v_col[i]
            end = t + width
            if eager or open_ids or (perp and broker._lots):
                high_first = h - o < o - lo or (h - o == o - lo and c < o)
                path = (o, h, lo, c) if high_first else (o, lo, h, c)
                share = v / 4
                for k in range(4):
                    at = t + k * step + step
                    if k and open_ids:
                        levels = self._levels_between(path[k - 1], path[k])
                        for j, level in enumerate(levels):
                            send(at - len(levels) + j, level, share)
                    send(at, path[k], share)
                    if not (eager or open_ids or (perp and broker._lots)):
                        break  # the rest of the bar can change nothing; the close goes in if needed
                else:
                    sent[0] = i
            current[0] = i
            broker.price = c
            broker.now = end
            on_bar(symbol, Bar(t, o, h, lo, c, v, end))
            if broker._lots:
                exposure += 1
                append(equity_of())
            elif spot:
                append(broker.flat_equity)
            else:
                append(equity_of())
            if progress is not None and i % report_every == 0:
                progress(i / n)
        trader.stop()
        ends = [t + width for t in ts_col]
        equity = list(zip(ends, values, strict=True))
        prices = list(zip(ends, c_col, strict=True))
        return self._result(equity, prices, exposure, n, ts_col[0], ts_col[-1] + width)

    def _levels_between(self, a: float, b: float) -> list[float]:
        """The account's open stop and limit prices strictly between two path prices, in the order the
        path meets them: the price passes through them, so they fill there, not at the next extreme."""
        tick = float(self.spec.tick_size)
        found: set[float] = set()
        for order in views.open_orders(self.broker.engine, {ACCOUNT}, self.symbol):
            for ticks in (order.stop_price, order.price):
                if ticks is not None:
                    level = ticks * tick
                    if min(a, b) < level < max(a, b):
                        found.add(level)
        return sorted(found, reverse=b < a)

    # --- recorded events ------------------------------------------------------------------------------

    def run_events(self, events: Sequence[Quote | TradeTick]) -> BacktestResult:
        if not events:
            raise invalid_request("the recording has no quotes or trades")
        if self.settings.interval is None:
            raise invalid_request("a recording's bars need settings.interval (e.g. '1m')")
        builder = BarBuilder(interval_ns(self.settings.interval))
        broker, trader, symbol = self.broker, self.trader, self.symbol
        equity: list[tuple[int, float]] = []
        prices: list[tuple[int, float]] = []
        exposure = 0
        bars = 0
        trader.start()
        n = len(events)
        report_every = max(1, n // 100)

        def on_bar(bar: Bar) -> None:
            nonlocal exposure, bars
            broker.now = max(broker.now, bar.end)
            trader.on_bar(symbol, bar)
            equity.append((bar.end, broker.equity()))
            prices.append((bar.end, bar.close))
            bars += 1
            if broker._lots:
                exposure += 1

        refused = 0
        for index, event in enumerate(events):
            ts = event.receive_ts
            finished = builder.close_until(ts)
            if finished is not None:
                on_bar(finished)
            broker.now = max(broker.now, ts)
            if isinstance(event, Quote):
                # as the service's router sends a feed's quote: its decimals as they came
                result = broker._apply(
                    _quote_command(symbol, event.bid, event.ask, event.last, event.bid_size, event.ask_size,
                                   broker.now)
                )
                if result and result[0].__class__.__name__ == "CommandRejected":
                    refused += 1
                    continue
                mid = event.mid
                if mid is None:
                    continue
                broker.price = float(mid)
                builder.add(ts, float(mid), 0.0)
                trader.on_quote(QuoteTick(symbol, ts, None if event.bid is None else float(event.bid),
                                          None if event.ask is None else float(event.ask),
                                          None if event.bid_size is None else float(event.bid_size),
                                          None if event.ask_size is None else float(event.ask_size)))
            else:
                # trades reach the strategies, not the engine (the router sends quotes) nor the bars
                price = float(event.price)
                trader.on_trade(StrategyTradeTick(symbol, ts, price, float(event.size), event.side or ""))
            if self.progress is not None and index % report_every == 0:
                self.progress(index / n)
        if refused:
            broker.log.warnings.append(f"{refused} recorded quote(s) refused by the market (off its tick?)")
        last = builder.close_until(2**62)
        if last is not None:
            on_bar(last)
        trader.stop()
        return self._result(equity, prices, exposure, bars, events[0].receive_ts, events[-1].receive_ts)

    def _result(self, equity: list[tuple[int, float]], prices: list[tuple[int, float]], exposure: int,
                bars: int, start: int, end: int) -> BacktestResult:
        broker = self.broker
        return BacktestResult(
            market=self.symbol,
            spec=self.spec,
            settings=self.settings,
            fill_model=self.fill_model,
            strategies=[{"name": c.name, "weight": c.weight, "parameters": s.params}
                        for c, s in zip(self.choices, self._strategies, strict=True)],
            seed=self.seed,
            initial_balance=self.settings.initial_balance,
            equity=equity,
            exposure_bars=exposure,
            bars=bars,
            fills=broker.log.fills,
            orders=broker.log.orders,
            decisions=self.decisions,
            signals=self.signal_count,
            vetoes=self.veto_count,
            rejections=broker.log.rejections,
            warnings=broker.log.warnings,
            fees=Decimal(broker.fees_minor) / broker._quote_scale,
            prices=prices,
            start=start,
            end=end,
        )


def _quote_command(symbol: str, bid: Decimal | None, ask: Decimal | None, last: Decimal | None,
                   bid_size: Decimal | None, ask_size: Decimal | None, ts: int) -> Any:
    from tradehall.domain.commands import Quote as QuoteCommand

    return QuoteCommand(market=symbol, bid=bid, ask=ask, last=last, bid_size=bid_size, ask_size=ask_size,
                        ts=ts, source="replay")
