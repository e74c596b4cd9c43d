"""The backtest report: metrics (names fixed by the contract), the trade list, the equity and
drawdown series, and what the run was (strategies, settings, fill model, seed, data range).

Everything is derived from the run's fills and equity only, in a fixed order, and serialised with
sorted keys: the same run gives the same bytes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import orjson

from tradehall.domain.market import DEFAULT_CURRENCY_DECIMALS
from tradehall.strategies.backtest import metrics as m
from tradehall.strategies.backtest.broker import Fill
from tradehall.strategies.backtest.runner import BacktestResult

METRIC_NAMES = (
    "total_return", "cagr", "sharpe", "sortino", "sharpe_trades", "sortino_trades", "calmar",
    "max_drawdown", "max_drawdown_duration", "win_rate", "profit_factor", "expectancy", "trades",
    "exposure", "fees", "best_trade", "worst_trade", "avg_win", "avg_loss", "max_consecutive_wins",
    "max_consecutive_losses", "var_95", "cvar_95",
)


def rfc3339(ts: int) -> str:
    seconds, ns = divmod(ts, 1_000_000_000)
    moment = datetime.fromtimestamp(seconds, UTC)
    text = moment.strftime("%Y-%m-%dT%H:%M:%S")
    if ns:
        text += f".{ns:09d}".rstrip("0")
    return text + "Z"


def fraction(value: float | None) -> str | None:
    """A float metric as a decimal string at full precision; None for undefined (no data, 0/0)."""
    if value is None or math.isnan(value) or math.isinf(value):
        return None
    return format(Decimal(repr(value)), "f")


@dataclass(slots=True)
class Trade:
    """A round trip: from flat to flat (a flip through zero ends one and starts the next)."""

    side: str
    quantity: Decimal
    entry_time: int
    entry_notional: Decimal
    exit_time: int = 0
    exit_notional: Decimal = Decimal(0)
    exit_quantity: Decimal = Decimal(0)
    pnl: Decimal = Decimal(0)
    fees: Decimal = Decimal(0)

    @property
    def entry_price(self) -> Decimal:
        return self.entry_notional / self.quantity

    @property
    def exit_price(self) -> Decimal:
        return self.exit_notional / self.exit_quantity if self.exit_quantity else Decimal(0)

    @property
    def net(self) -> Decimal:
        return self.pnl - self.fees

    @property
    def ret(self) -> float:
        """Net P&L over the entry notional."""
        return float(self.net / self.entry_notional) if self.entry_notional else 0.0


def round_trips(fills: list[Fill]) -> tuple[list[Trade], Trade | None]:
    """Closed round trips from the fills, and the one still open at the end (if any)."""
    closed: list[Trade] = []
    current: Trade | None = None
    position = Decimal(0)
    for fill in fills:
        signed = fill.quantity if fill.side == "buy" else -fill.quantity
        left = fill.quantity
        closing = Decimal(0)
        if position != 0 and (position > 0) != (signed > 0):
            assert current is not None
            closing = min(left, abs(position))
            current.exit_quantity += closing
            current.exit_notional += closing * fill.price
            current.exit_time = fill.ts
            current.pnl += fill.realized_pnl
            current.fees += fill.fee * closing / fill.quantity
            position += closing if signed > 0 else -closing
            left -= closing
            if position == 0:
                closed.append(current)
                current = None
        if left:
            if current is None:
                current = Trade("long" if signed > 0 else "short", Decimal(0), fill.ts, Decimal(0))
            current.quantity += left
            current.entry_notional += left * fill.price
            current.fees += fill.fee - fill.fee * closing / fill.quantity
            position += left if signed > 0 else -left
    return closed, current


def _money(value: Decimal, places: Decimal) -> str:
    return str(value.quantize(places))


def build_report(result: BacktestResult) -> dict[str, Any]:
    places = Decimal(1).scaleb(-_places(result))
    trades, still_open = round_trips(result.fills)
    exposure = result.exposure_bars / result.bars if result.bars else math.nan
    report = performance(
        result.initial_balance, result.start, result.equity, [(result.market, t) for t in trades],
        result.fees, exposure, places,
    )
    equity = result.equity
    final = equity[-1][1] if equity else float(result.initial_balance)
    metrics = report["metrics"]
    spec = result.spec
    return {
        "metrics": metrics,
        "trades": report["trades"],
        "open_trade": None if still_open is None else _trade_json(result.market, still_open, places),
        "equity": report["equity"],
        "drawdown": report["drawdown"],
        "daily_returns": report["daily_returns"],
        "run": {
            "market": result.market,
            "spec": {"kind": spec.kind.value, "base": spec.base, "quote": spec.quote,
                     "tick_size": str(spec.tick_size), "lot_size": str(spec.lot_size),
                     "taker_fee": str(spec.taker_fee), "maker_fee": str(spec.maker_fee),
                     "slippage": None if spec.slippage is None else str(spec.slippage),
                     "latency_ms": spec.latency_ms},
            "strategies": result.strategies,
            "settings": _settings_json(result),
            "fill_model": result.fill_model.as_dict(),
            "seed": result.seed,
            "start": rfc3339(result.start),
            "end": rfc3339(result.end),
            "bars": result.bars,
            "initial_balance": _money(result.initial_balance, places),
            "final_equity": format(Decimal(repr(final)).quantize(places), "f"),
            "signals": result.signals,
            "vetoes": result.vetoes,
            "orders": len(result.orders),
            "fills": len(result.fills),
            "rejections": result.rejections[:100],
            "warnings": result.warnings,
        },
        "decisions": result.decisions[:1000],
    }


def performance(
    initial_balance: Decimal,
    start: int,
    equity: list[tuple[int, float]],
    trades: list[tuple[str, Trade]],
    fees: Decimal,
    exposure: float,
    places: Decimal,
) -> dict[str, Any]:
    """The report's metrics, trade list, equity, drawdown and daily returns from plain inputs: a
    backtest's run, or a live session's equity per cycle and round trips (`GET /sessions/{id}/performance`).
    `trades` are (market, closed round trip) in time order; `exposure` a fraction (NaN: unknown)."""
    initial = float(initial_balance)
    drawdown_series, max_drawdown, duration_ns = m.drawdowns(initial, equity, start)
    daily = m.daily_returns(initial, equity)
    returns = [r for _, r in daily]
    final = equity[-1][1] if equity else initial
    nets = [t.net for _, t in trades]
    wins = [n for n in nets if n > 0]
    losses = [n for n in nets if n < 0]
    trade_returns = [t.ret for _, t in trades]
    outcomes = [n > 0 for n in nets if n != 0]
    max_wins, max_losses = m.streaks(outcomes)
    cagr = m.cagr(returns)
    metrics: dict[str, Any] = {
        "total_return": fraction(final / initial - 1.0),
        "cagr": fraction(cagr),
        "sharpe": fraction(m.sharpe(returns)),
        "sortino": fraction(m.sortino(returns)),
        "sharpe_trades": fraction(m.sharpe(trade_returns, 1)),
        "sortino_trades": fraction(m.sortino(trade_returns, 1)),
        "calmar": fraction(cagr / max_drawdown if max_drawdown > 0 else math.nan),
        "max_drawdown": fraction(max_drawdown),
        "max_drawdown_duration": duration_ns // 1_000_000_000,
        "win_rate": fraction(len(wins) / len(trades) if trades else math.nan),
        "profit_factor": _profit_factor(wins, losses),
        "expectancy": _money(sum(nets, Decimal(0)) / len(nets), places) if nets else None,
        "trades": len(trades),
        "exposure": fraction(exposure),
        "fees": _money(fees, places),
        "best_trade": _money(max(nets, default=Decimal(0)), places) if nets else None,
        "worst_trade": _money(min(nets, default=Decimal(0)), places) if nets else None,
        "avg_win": _money(sum(wins, Decimal(0)) / len(wins), places) if wins else None,
        "avg_loss": _money(sum(losses, Decimal(0)) / len(losses), places) if losses else None,
        "max_consecutive_wins": max_wins,
        "max_consecutive_losses": max_losses,
        "var_95": fraction(-m.value_at_risk(returns)),
        "cvar_95": fraction(-m.conditional_value_at_risk(returns)),
        "annualization": m.ANNUALIZATION,
    }
    return {
        "metrics": metrics,
        "trades": [_trade_json(market, t, places) for market, t in trades],
        "equity": [[rfc3339(start), _money(initial_balance, places)]]
        + [[rfc3339(ts), format(Decimal(repr(value)).quantize(places), "f")] for ts, value in equity],
        "drawdown": [[rfc3339(start), "0"]] + [[rfc3339(ts), fraction(dd)] for ts, dd in drawdown_series],
        "daily_returns": [[rfc3339(day), fraction(r)] for day, r in daily],
    }


def _places(result: BacktestResult) -> int:
    """Minor-unit places of the account's currency, as the engine's defaults have them."""
    return DEFAULT_CURRENCY_DECIMALS.get(result.spec.quote, 8)


def _profit_factor(wins: list[Decimal], losses: list[Decimal]) -> str | None:
    """Gross wins over gross losses; None (unbounded) without a loss, 0 without a win."""
    if not losses:
        return None
    if not wins:
        return "0"
    return format(sum(wins, Decimal(0)) / -sum(losses, Decimal(0)), "f")


AVERAGE_PLACES = Decimal("1e-10")


def _plain(value: Decimal) -> str:
    """A decimal without exponent or trailing zeros; an average price (fills of several sizes) to ten
    places, where an exact quotient may not end."""
    return format(value.quantize(AVERAGE_PLACES).normalize(), "f")


def _trade_json(market: str, trade: Trade, places: Decimal) -> dict[str, Any]:
    return {
        "market": market,
        "side": trade.side,
        "quantity": _plain(trade.quantity),
        "entry_time": rfc3339(trade.entry_time),
        "exit_time": rfc3339(trade.exit_time) if trade.exit_time else None,
        "entry_price": _plain(trade.entry_price),
        "exit_price": _plain(trade.exit_price) if trade.exit_quantity else None,
        "pnl": _money(trade.pnl, places),
        "fees": _money(trade.fees, places),
        "return": fraction(trade.ret),
    }


def _settings_json(result: BacktestResult) -> dict[str, Any]:
    s = result.settings
    risk = {k: getattr(s.risk, k) for k in sorted(type(s.risk).__dataclass_fields__)}
    return {
        "initial_balance": str(s.initial_balance),
        "interval": s.interval,
        "order_type": s.order_type,
        "min_confidence": s.min_confidence,
        "max_spread": s.max_spread,
        "min_volume": s.min_volume,
        "max_volatility": s.max_volatility,
        "max_data_age_seconds": s.max_data_age_seconds,
        **risk,
    }


def report_bytes(report: dict[str, Any]) -> bytes:
    return orjson.dumps(report, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2)
