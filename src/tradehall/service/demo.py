"""The demo's data and state: its markets, the simulated feed that prices them, the bots' quotes and
what a restart keeps (the demo user's cash account, its API key, the last marks).

Markets: BTC-USD (spot), BTC-PERP and ETH-PERP (perp), FED-CUT-DEC (binary). Their marks come from a
real `simulated` feed (`tradehall.marketdata.simulated`, a seeded random walk per market) through the
market-data router and pump like any configured feed, so `/ready` and `tradehall feeds status` show it.
A market maker re-quotes a two-sided ladder around each open market's mark and a taker crosses the
spread now and then; a market that is not open (halted, closed, settled) is left alone.

This module is in the service layer: it imports neither the API nor the client. The server, the
seeding over HTTP and the bots' requests live in `tradehall.cli.demo_cmd`.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from tradehall.domain.fixedpoint import decimal_of, decimal_str
from tradehall.marketdata.config import MarketDataConfig, RouteConfig, SimulatedInstrumentConfig
from tradehall.marketdata.router import CommandKind
from tradehall.service.settings import Settings

DEMO_PASSWORD = "demo-password"
MAKER = "demo-maker"
TAKER = "demo-taker"
DEMO_USER = "demo"
DEMO_KEY_LABEL = "demo"
BANNER_WIDTH = 80
"""Every line of the printed banner fits an 80-column terminal."""
CLI = ".venv/bin/tradehall"
"""How `make demo` users reach the CLI without activating the virtualenv."""
TRADABLE = "open"
"""The one market status the bots trade in; halted, closed, settled and cancelled markets are skipped."""


@dataclass(frozen=True, slots=True)
class DemoMarket:
    spec: dict[str, str]
    start: Decimal
    step_ticks: float
    """Standard deviation of one feed step, in ticks."""
    quote_size: str
    floor: Decimal | None = None
    ceiling: Decimal | None = None

    @property
    def symbol(self) -> str:
        return self.spec["symbol"]

    @property
    def tick(self) -> Decimal:
        return Decimal(self.spec["tick_size"])


DEMO_MARKETS: tuple[DemoMarket, ...] = (
    DemoMarket(
        {
            "symbol": "BTC-USD",
            "kind": "spot",
            "base": "BTC",
            "quote": "USD",
            "tick_size": "0.5",
            "lot_size": "0.001",
            "maker_fee": "0.0005",
            "taker_fee": "0.001",
        },
        Decimal("64000"),
        8.0,
        "0.05",
    ),
    DemoMarket(
        {
            "symbol": "BTC-PERP",
            "kind": "perp",
            "base": "BTC",
            "quote": "USD",
            "tick_size": "0.5",
            "lot_size": "0.001",
            "maker_fee": "0.0002",
            "taker_fee": "0.0005",
            "max_leverage": "20",
        },
        Decimal("64010"),
        8.0,
        "0.1",
    ),
    DemoMarket(
        {
            "symbol": "ETH-PERP",
            "kind": "perp",
            "base": "ETH",
            "quote": "USD",
            "tick_size": "0.05",
            "lot_size": "0.01",
            "maker_fee": "0.0002",
            "taker_fee": "0.0005",
            "max_leverage": "20",
        },
        Decimal("3200"),
        6.0,
        "1",
    ),
    DemoMarket(
        {
            "symbol": "FED-CUT-DEC",
            "kind": "binary",
            "base": "FED-CUT-DEC",
            "quote": "USD",
            "tick_size": "0.01",
            "lot_size": "1",
            "fee_model": "quadratic",
        },
        Decimal("0.55"),
        0.6,
        "50",
        floor=Decimal("0.03"),
        ceiling=Decimal("0.97"),
    ),
)


# ---- what a restart keeps ---------------------------------------------------------------------------


def demo_dir(data_dir: Path) -> Path:
    return data_dir / "demo"


def state_path(data_dir: Path) -> Path:
    return demo_dir(data_dir) / "state.json"


def feed_config_path(data_dir: Path) -> Path:
    return demo_dir(data_dir) / "marketdata.json"


@dataclass
class DemoState:
    """`<data_dir>/demo/state.json` (mode 0600: it holds the demo user's API key)."""

    account_id: str | None = None
    api_key: str | None = None
    marks: dict[str, str] = field(default_factory=dict)
    """The last mark of each demo market, where the simulated walk continues after a restart."""

    @classmethod
    def load(cls, path: Path) -> DemoState:
        """The saved state; an empty one when the file is missing or unreadable (a fresh demo)."""
        try:
            raw = json.loads(path.read_text())
        except (OSError, ValueError):
            return cls()
        if not isinstance(raw, dict):
            return cls()
        marks = raw.get("marks")
        return cls(
            account_id=raw.get("account_id") if isinstance(raw.get("account_id"), str) else None,
            api_key=raw.get("api_key") if isinstance(raw.get("api_key"), str) else None,
            marks={str(k): str(v) for k, v in marks.items()} if isinstance(marks, dict) else {},
        )

    def save(self, path: Path) -> None:
        """Written whole then renamed, so a crash leaves the old file or the new one."""
        path.parent.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {"account_id": self.account_id, "api_key": self.api_key, "marks": self.marks}, indent=2
        )
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(body + "\n")
        os.replace(tmp, path)


def _start_of(market: DemoMarket, saved: str | None) -> Decimal:
    """The saved mark when it is a usable price on the market's tick, else the market's default."""
    if saved is None:
        return market.start
    try:
        price = Decimal(saved)
    except InvalidOperation:
        return market.start
    if not price.is_finite() or price <= 0 or price % market.tick != 0:
        return market.start
    if (market.floor is not None and price <= market.floor) or (
        market.ceiling is not None and price >= market.ceiling
    ):
        return market.start
    return price


def demo_marketdata_config(
    seed: int, interval: float, marks: Mapping[str, str] | None = None
) -> MarketDataConfig:
    """One `simulated` feed walking every demo market, routed as its mark (book markets take no quotes)."""
    saved = marks or {}
    return MarketDataConfig(
        simulated=[
            SimulatedInstrumentConfig(
                name=market.symbol,
                start=_start_of(market, saved.get(market.symbol)),
                tick=market.tick,
                spread_ticks=2,
                step_ticks=market.step_ticks,
                jump_probability=0.005,
                jump_ticks=int(market.step_ticks * 5) or 1,
                floor=market.floor,
                ceiling=market.ceiling,
            )
            for market in DEMO_MARKETS
        ],
        simulated_seed=seed,
        simulated_interval=interval,
        routes=[
            RouteConfig(
                market=market.symbol, sources=[f"simulated:{market.symbol}"], commands=CommandKind.MARK
            )
            for market in DEMO_MARKETS
        ],
    )


def demo_settings(settings: Settings, *, seed: int = 7, feed_interval: float = 1.0) -> Settings:
    """The demo's settings: no rate limit (the bots share the loopback with the user) and, unless a
    market-data configuration is set, the simulated feed written to `<data_dir>/demo/marketdata.json`
    (starting from the marks the last run saved)."""
    update: dict[str, object] = {"rate_limit_per_second": 0.0}
    if settings.marketdata_config is None:
        state = DemoState.load(state_path(settings.data_dir))
        path = feed_config_path(settings.data_dir)
        path.parent.mkdir(parents=True, exist_ok=True)
        config = demo_marketdata_config(seed, feed_interval, state.marks)
        path.write_text(config.model_dump_json(indent=2, exclude_defaults=True) + "\n")
        update["marketdata_config"] = path
    return settings.model_copy(update=update)


# ---- the banner ------------------------------------------------------------------------------------


@dataclass
class DemoInfo:
    url: str
    admin_user: str
    admin_password: str
    demo_user: str
    demo_password: str
    demo_account: str
    demo_api_key: str
    markets: list[str] = field(default_factory=list)
    api_key_reused: bool = False
    data_dir: Path = Path("var")


def banner_lines(info: DemoInfo) -> list[str]:
    """What `tradehall demo` prints inside its frame: each line at most BANNER_WIDTH - 4 characters,
    so the framed banner fits an 80-column terminal."""
    ws = info.url.replace("http", "ws", 1)
    key_note = "kept from the last run in" if info.api_key_reused else "saved for the next run in"
    inner = BANNER_WIDTH - 4  # the frame's borders and padding
    lines = [
        f"dashboard  {info.url}/  (sign in as {info.demo_user})",
        f"API        {info.url}",
        f"docs       {info.url}/docs",
        f"WebSocket  {ws}/ws",
        f"admin      {info.admin_user} / {info.admin_password}",
        f"demo user  {info.demo_user} / {info.demo_password}",
        f"account    {info.demo_account} (cash, USD)",
        f"API key    {info.demo_api_key}",
        f"           ({key_note}",
        f"           {_fit(str(state_path(info.data_dir)) + ')', inner - 11)}",
        f"markets    {', '.join(info.markets)}",
        f"prices     simulated feed: {CLI} feeds status",
        "",
        "CLI (or `source .venv/bin/activate`, then `tradehall ...`):",
        f"  export TRADEHALL_API_KEY={info.demo_api_key}",
    ]
    if info.url != "http://127.0.0.1:8000":
        lines.append(f"  export TRADEHALL_URL={info.url}")
    lines += [
        f"  {CLI} account show {info.demo_account}",
        f"  {CLI} book BTC-PERP",
        "",
        "Ctrl-C stops the demo (journal flushed, snapshot written).",
    ]
    return lines


def _fit(text: str, width: int) -> str:
    """`text`, its start elided when it is longer than `width` (a long data-dir path)."""
    return text if len(text) <= width else "..." + text[len(text) - width + 3 :]


# ---- the bots' quotes ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LadderQuote:
    side: str
    quantity: str
    price: str


@dataclass(frozen=True, slots=True)
class BotRound:
    """One round of one market: the maker's post-only ladder and, sometimes, a taker's market order."""

    quotes: list[LadderQuote]
    taker: tuple[str, str] | None
    """(side, quantity) of a market IOC order, or None."""


class MarketBot:
    """The quoting of one market around its mark; seeded, so a seed replays the same decisions."""

    def __init__(self, market: DemoMarket, rng: random.Random) -> None:
        self.market = market
        self.rng = rng
        self.tick = market.tick
        self.lot = Decimal(market.spec["lot_size"])
        self.spread = max(1, int(market.step_ticks // 2))
        # a binary's prices lie strictly between 0 and 1
        self.max_ticks = int(1 / self.tick) - 1 if market.spec["kind"] == "binary" else None

    def price(self, ticks: int) -> str:
        return decimal_str(decimal_of(ticks, self.tick))

    def plan(self, mark: Decimal) -> BotRound:
        mid = int(mark / self.tick)
        size = Decimal(self.market.quote_size)
        quotes: list[LadderQuote] = []
        for level in range(5):
            level_size = decimal_str(
                (size * (level + 1) * Decimal(self.rng.randint(5, 15)) / 10).quantize(self.lot)
            )
            bid = mid - self.spread - level * self.spread
            ask = mid + self.spread + level * self.spread
            if bid > 0:
                quotes.append(LadderQuote("buy", level_size, self.price(bid)))
            if self.max_ticks is None or ask <= self.max_ticks:
                quotes.append(LadderQuote("sell", level_size, self.price(ask)))
        taker = None
        if self.rng.random() < 0.6:
            side = "buy" if self.rng.random() < 0.5 else "sell"
            quantity = (size * Decimal(self.rng.randint(1, 8)) / 10).quantize(self.lot)
            if quantity > 0:
                taker = (side, decimal_str(quantity))
        return BotRound(quotes, taker)


def market_bots(seed: int) -> list[MarketBot]:
    rng = random.Random(seed)
    return [MarketBot(market, random.Random(rng.getrandbits(64))) for market in DEMO_MARKETS]


def parse_mark(value: object) -> Decimal | None:
    """A market's `mark_price` from the API, None when it has none yet."""
    if not isinstance(value, str):
        return None
    with contextlib.suppress(InvalidOperation):
        price = Decimal(value)
        if price.is_finite() and price > 0:
            return price
    return None


__all__ = [
    "BANNER_WIDTH",
    "CLI",
    "DEMO_MARKETS",
    "DEMO_PASSWORD",
    "DEMO_USER",
    "MAKER",
    "TAKER",
    "TRADABLE",
    "BotRound",
    "DemoInfo",
    "DemoMarket",
    "DemoState",
    "LadderQuote",
    "MarketBot",
    "banner_lines",
    "demo_marketdata_config",
    "demo_settings",
    "market_bots",
    "parse_mark",
]
