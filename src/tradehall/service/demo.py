"""The live demo: the server on the embedded defaults, demo markets, users, and bots that keep them moving.

Markets: BTC-USD (spot), BTC-PERP and ETH-PERP (perp), FED-CUT-DEC (binary). A seeded random walk
per market (`tradehall.marketdata.simulated`) sets the mark; a market maker re-quotes a two-sided
ladder around it and a taker crosses the spread now and then, so every book is two-sided and trades.
The bots talk to the API through the Python client like any other user. Seeding is idempotent, so
a restart on the same data dir continues where the journal left off.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

import httpx
import structlog
import uvicorn

from tradehall.api import create_app
from tradehall.client import ApiError, AsyncClient
from tradehall.domain.fixedpoint import decimal_of, decimal_str
from tradehall.marketdata.simulated import SimulatedInstrument, SimulatedMarket
from tradehall.service.settings import Settings

log = structlog.get_logger(__name__)

DEMO_PASSWORD = "demo-password"
MAKER = "demo-maker"
TAKER = "demo-taker"
DEMO_USER = "demo"


@dataclass(frozen=True, slots=True)
class DemoMarket:
    spec: dict[str, str]
    start: Decimal
    step_ticks: float
    quote_size: str
    floor: Decimal | None = None
    ceiling: Decimal | None = None


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


async def _ensure_user(admin: AsyncClient, username: str, password: str) -> None:
    with contextlib.suppress(ApiError):
        await admin.create_user(username, password, "trader")


async def _funded_account(client: AsyncClient, admin: AsyncClient, deposits: dict[str, str]) -> str:
    accounts = (await client.accounts())["items"]
    if accounts:
        return str(accounts[0]["id"])
    account = await client.create_account("USD")
    for currency, amount in deposits.items():
        await admin.deposit(account["id"], amount, currency)
    return str(account["id"])


async def seed(url: str, settings: Settings) -> DemoInfo:
    """Markets, users, funded accounts and an API key for the demo user (idempotent)."""
    admin = await AsyncClient(url).login(settings.admin_user, settings.admin_password)
    existing = {m["symbol"] for m in (await admin.markets())["items"]}
    for market in DEMO_MARKETS:
        if market.spec["symbol"] not in existing:
            await admin.create_market(**market.spec)
    for username in (MAKER, TAKER, DEMO_USER):
        await _ensure_user(admin, username, DEMO_PASSWORD)
    deposits = {"USD": "50000000", "BTC": "500", "ETH": "5000"}
    for username in (MAKER, TAKER):
        bot = await AsyncClient(url).login(username, DEMO_PASSWORD)
        await _funded_account(bot, admin, deposits)
        await bot.aclose()
    demo = await AsyncClient(url).login(DEMO_USER, DEMO_PASSWORD)
    demo_account = await _funded_account(demo, admin, {"USD": "100000", "BTC": "2"})
    key = await demo.create_api_key("demo")
    await demo.aclose()
    await admin.aclose()
    return DemoInfo(
        url=url,
        admin_user=settings.admin_user,
        admin_password=settings.admin_password,
        demo_user=DEMO_USER,
        demo_password=DEMO_PASSWORD,
        demo_account=demo_account,
        demo_api_key=str(key["api_key"]),
        markets=[m.spec["symbol"] for m in DEMO_MARKETS],
    )


class MarketBot:
    """One market: the walk sets the mark, the maker re-quotes a ladder, the taker trades sometimes."""

    def __init__(self, market: DemoMarket, rng: random.Random) -> None:
        self.market = market
        self.rng = rng
        tick = Decimal(market.spec["tick_size"])
        self.tick = tick
        self.walk = SimulatedMarket(
            SimulatedInstrument(
                name=market.spec["symbol"],
                start=market.start,
                tick=tick,
                spread_ticks=2,
                step_ticks=market.step_ticks,
                jump_probability=0.005,
                jump_ticks=int(market.step_ticks * 5) or 1,
                floor=market.floor,
                ceiling=market.ceiling,
            ),
            random.Random(rng.getrandbits(64)),
        )
        self.lot = Decimal(market.spec["lot_size"])

    def price(self, ticks: int) -> str:
        return decimal_str(decimal_of(ticks, self.tick))

    async def step(
        self,
        admin: AsyncClient,
        maker: AsyncClient,
        maker_account: str,
        taker: AsyncClient,
        taker_account: str,
    ) -> None:
        symbol = self.market.spec["symbol"]
        self.walk.step(time.time_ns())
        mid = self.walk.mid_ticks
        await admin.set_price(symbol, self.price(mid))
        await maker.cancel_all(maker_account, symbol)
        size = Decimal(self.market.quote_size)
        spread = max(1, int(self.market.step_ticks // 2))
        for level in range(5):
            quantity = decimal_str(
                (size * (level + 1) * Decimal(self.rng.randint(5, 15)) / 10).quantize(self.lot)
            )
            bid = mid - spread - level * spread
            ask = mid + spread + level * spread
            low = self.walk.low - 1
            if bid > max(0, low):
                await _quietly(
                    maker.place_order(maker_account, symbol, "buy", quantity, self.price(bid), post_only=True)
                )
            high = self.walk.high
            if high is None or ask <= high + 1:
                await _quietly(
                    maker.place_order(
                        maker_account, symbol, "sell", quantity, self.price(ask), post_only=True
                    )
                )
        if self.rng.random() < 0.6:
            side = "buy" if self.rng.random() < 0.5 else "sell"
            quantity = decimal_str((size * Decimal(self.rng.randint(1, 8)) / 10).quantize(self.lot))
            if Decimal(quantity) > 0:
                await _quietly(
                    taker.place_order(
                        taker_account, symbol, side, quantity, type="market", time_in_force="ioc"
                    )
                )


async def _quietly(call: object) -> None:
    """A bot's refused order (post-only crossing, funds) is part of the simulation, not an error."""
    try:
        await call  # type: ignore[misc]
    except ApiError as error:
        log.debug("demo_bot_order_refused", code=error.code, detail=error.detail)


async def run_bots(
    url: str,
    settings: Settings,
    seed_value: int,
    interval: float,
    stop: asyncio.Event,
    stopping: Callable[[], bool] = lambda: False,
) -> None:
    rng = random.Random(seed_value)
    bots = [MarketBot(market, random.Random(rng.getrandbits(64))) for market in DEMO_MARKETS]
    admin = await AsyncClient(url).login(settings.admin_user, settings.admin_password)
    maker = await AsyncClient(url).login(MAKER, DEMO_PASSWORD)
    taker = await AsyncClient(url).login(TAKER, DEMO_PASSWORD)
    maker_account = str((await maker.accounts())["items"][0]["id"])
    taker_account = str((await taker.accounts())["items"][0]["id"])
    try:
        while not stop.is_set():
            for bot in bots:
                if stop.is_set() or stopping():
                    break
                try:
                    await bot.step(admin, maker, maker_account, taker, taker_account)
                except (ApiError, OSError, httpx.HTTPError) as error:
                    if stopping():
                        return  # the server is shutting down (Ctrl-C): not a failure
                    log.warning("demo_bot_step_failed", market=bot.market.spec["symbol"], error=str(error))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
    finally:
        for client in (admin, maker, taker):
            await client.aclose()


def demo_settings(settings: Settings) -> Settings:
    """The demo needs no rate limit in its own way: the bots share the loopback with the user."""
    return settings.model_copy(update={"rate_limit_per_second": 0.0})


async def run_demo(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    seed_value: int = 7,
    interval: float = 1.0,
    on_ready: Callable[[DemoInfo], None] | None = None,
    duration: float | None = None,
) -> DemoInfo:
    """Serves the API with the demo until Ctrl-C (or `duration` seconds); returns the printed info."""
    settings = demo_settings(settings)
    app = create_app(settings)
    config = uvicorn.Config(
        app, host=host, port=port, log_level="warning", lifespan="on", ws_per_message_deflate=False
    )
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            raise RuntimeError("the server stopped during start-up")
        await asyncio.sleep(0.05)
    url = f"http://{host}:{port}"
    info = await seed(url, settings)
    if on_ready is not None:
        on_ready(info)
    stop = asyncio.Event()
    bots = asyncio.create_task(
        run_bots(url, settings, seed_value, interval, stop, lambda: bool(server.should_exit))
    )
    try:
        if duration is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(serving), duration)
            server.should_exit = True
        await serving
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(bots, 5.0)
        server.should_exit = True
        if not serving.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await serving
    return info
