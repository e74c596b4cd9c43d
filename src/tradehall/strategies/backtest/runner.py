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
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

import msgspec

from tradehall.domain.enums import MarketKind, Venue
from tradehall.domain.errors import invalid_request
from tradehall.domain.market import MarketSpec
from tradehall.engine import EngineConfig, views
from tradehall.marketdata.models import Quote, TradeTick
from tradehall.strategies.backtest.broker import ACCOUNT, EngineBroker, Fill, OrderRecord
from tradehall.strategies.backtest.data import Ohlcv
from tradehall.strategies.bars import BarBuilder, interval_ns
from tradehall.strategies.base import Strategy
from tradehall.strategies.combiner import Combiner, Decision, Validator
from tradehall.strategies.registry import StrategyRegistry, default_registry
from tradehall.strategies.risk import RiskLimitValidator, RiskManager, RiskSettings
from tradehall.strategies.trader import Member, Trader
from tradehall.strategies.types import Bar, QuoteTick, Signal
from tradehall.strategies.types import TradeTick as StrategyTradeTick
from tradehall.strategies.validators import (
    FreshnessValidator,
    LiquidityValidator,
    MaxPositionsValidator,
    SpreadValidator,
    VolatilityValidator,
)

DEFAULT_INITIAL_BALANCE = Decimal("10000")
MAX_DECISIONS_KEPT = 10_000


def _decimal(value: object, name: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str | Decimal):
        raise invalid_request(f"{name} must be a decimal number")
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        raise invalid_request(f"{name} {value!r} is not a decimal number") from None
    if not number.is_finite():
        raise invalid_request(f"{name} must be finite")
    return number


@dataclass(frozen=True, slots=True)
class FillModel:
    """How the quote venue fills the backtest's orders. None keeps the market's own term.

    `slippage` and fees are fractions; `spread` is quoted around every bar price (half each side);
    `depth` is the fraction of a bar's volume quoted at each of its prices (None: as deep as needed);
    `latency_ms` delays an order before it can fill (at least 1 ms sends it to the next price)."""

    slippage: Decimal | None = None
    taker_fee: Decimal | None = None
    maker_fee: Decimal | None = None
    latency_ms: int | None = None
    spread: Decimal = Decimal("0")
    depth: Decimal | None = None

    @classmethod
    def parse(cls, given: dict[str, Any] | str | None) -> FillModel:
        """From `{"slippage": "0.001", ...}` or `"slippage=0.001,fee=0.001,latency_ms=5"`
        (`fee` sets both fees)."""
        if given is None:
            return cls()
        if isinstance(given, str):
            pairs: dict[str, Any] = {}
            for part in filter(None, (p.strip() for p in given.split(","))):
                key, sep, value = part.partition("=")
                if not sep:
                    raise invalid_request(f"fill model term {part!r} is not key=value")
                pairs[key.strip()] = value.strip()
            given = pairs
        if not isinstance(given, dict):
            raise invalid_request("fill_model must be an object")
        terms: dict[str, Any] = {}
        for key, value in given.items():
            if key == "fee":
                terms["taker_fee"] = terms["maker_fee"] = _decimal(value, "fee")
            elif key in ("slippage", "taker_fee", "maker_fee", "spread", "depth"):
                terms[key] = None if value is None and key == "depth" else _decimal(value, key)
            elif key == "latency_ms":
                latency = _decimal(value, key)
                if latency != latency.to_integral_value() or latency < 0:
                    raise invalid_request("latency_ms must be a whole number of milliseconds, at least 0")
                terms[key] = int(latency)
            else:
                raise invalid_request(
                    f"unknown fill model term {key!r}: slippage, fee, taker_fee, maker_fee, latency_ms, "
                    "spread, depth"
                )
        for key in ("slippage", "taker_fee", "maker_fee", "spread"):
            if key in terms and terms[key] is not None and not Decimal(0) <= terms[key] < 1:
                raise invalid_request(f"{key} is a fraction in [0, 1)")
        if terms.get("depth") is not None and not terms["depth"] > 0:
            raise invalid_request("depth is a positive fraction of the bar's volume")
        return cls(**terms)

    def apply(self, spec: MarketSpec) -> MarketSpec:
        """The market's spec as the backtest's quote-venue market."""
        changes: dict[str, Any] = {"venue": Venue.QUOTE, "price_band": None}
        if self.slippage is not None:
            changes["slippage"] = self.slippage
        if self.taker_fee is not None:
            changes["taker_fee"] = self.taker_fee
        if self.maker_fee is not None:
            changes["maker_fee"] = self.maker_fee
        if self.latency_ms is not None:
            changes["latency_ms"] = self.latency_ms
        return msgspec.structs.replace(spec, **changes)

    def as_dict(self) -> dict[str, Any]:
        def text(value: Decimal | None) -> str | None:
            return None if value is None else str(value)

        return {
            "slippage": text(self.slippage),
            "taker_fee": text(self.taker_fee),
            "maker_fee": text(self.maker_fee),
            "latency_ms": self.latency_ms,
            "spread": str(self.spread),
            "depth": text(self.depth),
        }


@dataclass(frozen=True, slots=True)
class StrategyChoice:
    name: str
    weight: float = 1.0
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def parse(cls, given: object) -> StrategyChoice:
        if isinstance(given, str):
            return cls(given)
        if not isinstance(given, dict) or not isinstance(given.get("name"), str):
            raise invalid_request("a strategy is {name, weight?, parameters?}")
        weight = given.get("weight", 1.0)
        if isinstance(weight, bool) or not isinstance(weight, int | float | str):
            raise invalid_request("a strategy's weight is a number")
        try:
            weight_value = float(weight)
        except ValueError:
            raise invalid_request(f"weight {weight!r} is not a number") from None
        if not weight_value >= 0 or weight_value == float("inf"):
            raise invalid_request("a strategy's weight is a finite number, at least 0")
        parameters = given.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise invalid_request("a strategy's parameters are an object")
        unknown = set(given) - {"name", "weight", "parameters"}
        if unknown:
            raise invalid_request(f"unknown strategy field(s) {sorted(unknown)}")
        return cls(given["name"], weight_value, dict(parameters))


@dataclass(frozen=True, slots=True)
class BacktestSettings:
    initial_balance: Decimal = DEFAULT_INITIAL_BALANCE
    interval: str | None = None
    order_type: str = "market"
    min_confidence: float = 0.0
    risk: RiskSettings = field(default_factory=RiskSettings)
    max_spread: float | None = None
    min_volume: float | None = None
    max_volatility: float | None = None
    max_data_age_seconds: float | None = None

    @classmethod
    def parse(cls, given: dict[str, Any] | None) -> BacktestSettings:
        given = dict(given or {})
        if not isinstance(given, dict):
            raise invalid_request("settings must be an object")
        initial = _decimal(given.pop("initial_balance", DEFAULT_INITIAL_BALANCE), "initial_balance")
        if initial <= 0:
            raise invalid_request("initial_balance must be positive")
        interval = given.pop("interval", None)
        if interval is not None:
            if not isinstance(interval, str | int | float):
                raise invalid_request("interval is like '1m'")
            interval_ns(interval)
            interval = str(interval)
        order_type = given.pop("order_type", "market")
        if order_type not in ("market", "limit"):
            raise invalid_request("order_type is market or limit")
        min_confidence = float(_decimal(given.pop("min_confidence", 0), "min_confidence"))
        if not 0 <= min_confidence <= 1:
            raise invalid_request("min_confidence is in [0, 1]")
        guards: dict[str, float | None] = {}
        for name in ("max_spread", "min_volume", "max_volatility", "max_data_age_seconds"):
            value = given.pop(name, None)
            guards[name] = None if value is None else float(_decimal(value, name))
        given.pop("interval_seconds", None)  # a session's cycle; a backtest's bars are its data
        risk = RiskSettings.from_settings(given)
        unknown = set(given) - set(RiskSettings.__dataclass_fields__)
        if unknown:
            raise invalid_request(f"unknown setting(s) {sorted(unknown)}")
        return cls(initial, interval, order_type, min_confidence, risk, **guards)

    def validators(self, risk: RiskManager) -> list[Validator]:
        found: list[Validator] = []
        if self.max_data_age_seconds is not None:
            found.append(FreshnessValidator(self.max_data_age_seconds))
        if self.max_spread is not None:
            found.append(SpreadValidator(self.max_spread))
        if self.min_volume is not None:
            found.append(LiquidityValidator(min_volume=self.min_volume))
        if self.max_volatility is not None:
            found.append(VolatilityValidator(self.max_volatility))
        found.append(MaxPositionsValidator(self.risk.max_positions))
        found.append(RiskLimitValidator(risk))
        return found


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


def _decimal_places(value: float) -> int:
    text = repr(value)
    if "e" in text or "E" in text:
        return 8
    _, _, fraction = text.partition(".")
    fraction = fraction.rstrip("0")
    return min(len(fraction), 8)


def spec_for_data(symbol: str, data: Ohlcv | None, tick_size: Decimal | None = None,
                  lot_size: Decimal | None = None, kind: MarketKind = MarketKind.SPOT) -> MarketSpec:
    """A spot market for a data file: base and quote from `BASE-QUOTE` (or `BASE/QUOTE`), the tick the
    finest the prices need (at most 8 places), lots of 1e-8."""
    for separator in ("-", "/", "_"):
        if separator in symbol:
            base, _, quote = symbol.partition(separator)
            break
    else:
        base, quote = symbol, "USD"
    if not base or not quote:
        raise invalid_request(f"market {symbol!r} is not BASE-QUOTE")
    if tick_size is None:
        places = 0
        if data is not None:
            for column in (data.open, data.high, data.low, data.close):
                for value in column:
                    places = max(places, _decimal_places(value))
                    if places >= 8:
                        break
        tick_size = Decimal(1).scaleb(-places)
    return MarketSpec(
        symbol=symbol,
        kind=kind,
        base=base.upper(),
        quote=quote.upper(),
        tick_size=tick_size,
        lot_size=lot_size or Decimal("0.00000001"),
        venue=Venue.QUOTE,
        slippage=Decimal("0"),
        latency_ms=1,
        price_protection=None,
    )


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
