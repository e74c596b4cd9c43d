"""`tradehall demo`: the API server with the demo's markets, users, simulated feed and bots.

The demo's data (markets, feed configuration, quoting, saved state, banner text) is in
`tradehall.service.demo`; what needs the layers above the service lives here: the server (uvicorn and
`tradehall.api`), the seeding over HTTP and the bots, which trade through the Python client like any
other user. Seeding is idempotent and the demo user's cash account and API key are kept in
`<data_dir>/demo/state.json`, so a restart on the same data dir continues with the same ones.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import structlog
import typer
from rich.console import Console
from rich.panel import Panel

from tradehall.client import ApiError, AsyncClient
from tradehall.service.demo import (
    DEMO_KEY_LABEL,
    DEMO_MARKETS,
    DEMO_PASSWORD,
    DEMO_USER,
    MAKER,
    TAKER,
    TRADABLE,
    DemoInfo,
    DemoState,
    banner_lines,
    demo_settings,
    market_bots,
    parse_mark,
    state_path,
)
from tradehall.service.settings import Settings

log = structlog.get_logger(__name__)

BOT_DEPOSITS = {"USD": "50000000", "BTC": "500", "ETH": "5000"}
DEMO_DEPOSITS = {"USD": "100000", "BTC": "2"}


# ---- seeding -----------------------------------------------------------------------------------------


async def _ensure_user(admin: AsyncClient, username: str, password: str) -> None:
    with contextlib.suppress(ApiError):  # already there
        await admin.create_user(username, password, "trader")


async def cash_account(
    client: AsyncClient, admin: AsyncClient, deposits: dict[str, str], preferred: str | None = None
) -> str:
    """The user's USD cash account: `preferred` while it is one, else the first by id, else a new funded
    one. Never an assessment account, and the same one on every restart."""
    items = (await client.accounts())["items"]
    cash = sorted(
        str(item["id"]) for item in items if item.get("kind") == "cash" and item.get("currency") == "USD"
    )
    if preferred in cash:
        return str(preferred)
    if cash:
        return cash[0]
    account = await client.create_account("USD")
    for currency, amount in deposits.items():
        await admin.deposit(account["id"], amount, currency)
    return str(account["id"])


async def demo_api_key(url: str, demo: AsyncClient, saved: str | None) -> tuple[str, bool]:
    """(key, reused): the saved key while it still authenticates the demo user, else a new one."""
    if saved:
        async with AsyncClient(url, api_key=saved) as probe:
            try:
                me = await probe.me()
            except ApiError:
                me = None
        if isinstance(me, dict) and me.get("username") == DEMO_USER:
            return saved, True
    created = await demo.create_api_key(DEMO_KEY_LABEL)
    return str(created["api_key"]), False


async def seed(url: str, settings: Settings) -> DemoInfo:
    """Markets, users, funded accounts and the demo user's API key (idempotent); saves the demo state."""
    path = state_path(settings.data_dir)
    state = DemoState.load(path)
    async with await AsyncClient(url).login(settings.admin_user, settings.admin_password) as admin:
        existing = {m["symbol"] for m in (await admin.markets())["items"]}
        for market in DEMO_MARKETS:
            if market.symbol not in existing:
                await admin.create_market(**market.spec)
        for username in (MAKER, TAKER, DEMO_USER):
            await _ensure_user(admin, username, DEMO_PASSWORD)
        for username in (MAKER, TAKER):
            async with await AsyncClient(url).login(username, DEMO_PASSWORD) as bot:
                await cash_account(bot, admin, BOT_DEPOSITS)
        async with await AsyncClient(url).login(DEMO_USER, DEMO_PASSWORD) as demo:
            account = await cash_account(demo, admin, DEMO_DEPOSITS, state.account_id)
            key, reused = await demo_api_key(url, demo, state.api_key)
    state.account_id, state.api_key = account, key
    state.save(path)
    return DemoInfo(
        url=url,
        admin_user=settings.admin_user,
        admin_password=settings.admin_password,
        demo_user=DEMO_USER,
        demo_password=DEMO_PASSWORD,
        demo_account=account,
        demo_api_key=key,
        markets=[m.symbol for m in DEMO_MARKETS],
        api_key_reused=reused,
        data_dir=settings.data_dir,
    )


# ---- the bots ----------------------------------------------------------------------------------------


@dataclass
class BotStats:
    """What the bots did, by market: for the logs and for tests that pin their behaviour."""

    rounds: int = 0
    placed: Counter[str] = field(default_factory=Counter)
    refused: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(market, error code) of refused orders."""
    paused: dict[str, str] = field(default_factory=dict)
    """Markets left alone because they are not open, with their status."""


class DemoBots:
    """A maker re-quoting every open market around its mark, a taker crossing now and then."""

    def __init__(self, seed: int, interval: float) -> None:
        self.bots = market_bots(seed)
        self.interval = interval
        self.stats = BotStats()
        self.marks: dict[str, str] = {}
        """The last mark seen per market (saved on stop: the walk continues there)."""

    async def _place(self, market: str, call: Awaitable[Any]) -> None:
        """A refused order (post-only crossing, funds) is part of the simulation, not an error."""
        try:
            await call
        except ApiError as error:
            self.stats.refused[(market, error.code)] += 1
            log.debug("demo_bot_order_refused", market=market, code=error.code, detail=error.detail)
        else:
            self.stats.placed[market] += 1

    def _tradable(self, market: str, status: str) -> bool:
        paused = self.stats.paused
        if status != TRADABLE:
            if paused.get(market) != status:
                log.info("demo_bot_paused", market=market, status=status)
                paused[market] = status
            return False
        if paused.pop(market, None) is not None:
            log.info("demo_bot_resumed", market=market)
        return True

    async def step(
        self, maker: AsyncClient, maker_account: str, taker: AsyncClient, taker_account: str
    ) -> None:
        markets = {m["symbol"]: m for m in (await maker.markets())["items"]}
        for bot in self.bots:
            symbol = bot.market.symbol
            found = markets.get(symbol)
            if found is None or not self._tradable(symbol, str(found["status"])):
                continue
            mark = parse_mark(found.get("mark_price"))
            if mark is None:
                continue  # the feed has not priced it yet
            self.marks[symbol] = str(found["mark_price"])
            plan = bot.plan(mark)
            await maker.cancel_all(maker_account, symbol)
            for quote in plan.quotes:
                await self._place(
                    symbol,
                    maker.place_order(
                        maker_account, symbol, quote.side, quote.quantity, quote.price, post_only=True
                    ),
                )
            if plan.taker is not None:
                side, quantity = plan.taker
                await self._place(
                    symbol,
                    taker.place_order(
                        taker_account, symbol, side, quantity, type="market", time_in_force="ioc"
                    ),
                )

    async def run(self, url: str, stop: asyncio.Event, stopping: Callable[[], bool] = lambda: False) -> None:
        maker = await AsyncClient(url).login(MAKER, DEMO_PASSWORD)
        taker = await AsyncClient(url).login(TAKER, DEMO_PASSWORD)
        try:
            maker_account = await _only_cash(maker)
            taker_account = await _only_cash(taker)
            while not stop.is_set() and not stopping():
                try:
                    await self.step(maker, maker_account, taker, taker_account)
                except (ApiError, OSError, httpx.HTTPError) as error:
                    if stopping():
                        return  # the server is shutting down (Ctrl-C): not a failure
                    log.warning("demo_bot_round_failed", error=str(error))
                self.stats.rounds += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.interval)
        finally:
            for client in (maker, taker):
                await client.aclose()


async def _only_cash(client: AsyncClient) -> str:
    items = (await client.accounts())["items"]
    return sorted(str(a["id"]) for a in items if a.get("kind") == "cash" and a.get("currency") == "USD")[0]


# ---- the server --------------------------------------------------------------------------------------


async def run_demo(
    settings: Settings,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    seed_value: int = 7,
    interval: float = 1.0,
    on_ready: Callable[[DemoInfo], None] | None = None,
    duration: float | None = None,
    bots: DemoBots | None = None,
    until: asyncio.Event | None = None,
) -> DemoInfo:
    """Serves the API with the demo until Ctrl-C, `duration` seconds or `until` is set; returns the
    printed info. `bots` lets a caller watch the bots' `stats`."""
    import uvicorn

    from tradehall.api import create_app
    from tradehall.api.server import uvicorn_config

    settings = demo_settings(settings, seed=seed_value, feed_interval=interval)
    config = uvicorn_config(create_app(settings), settings, host=host, port=port)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            await serving
            raise RuntimeError("the server stopped during start-up")
        await asyncio.sleep(0.05)
    log.info(
        "demo_serving",
        loop=type(asyncio.get_running_loop()).__module__,
        http=config.http_protocol_class.__name__,
    )
    url = f"http://{host}:{port}"
    info = await seed(url, settings)
    if on_ready is not None:
        on_ready(info)
    bots = bots if bots is not None else DemoBots(seed_value, interval)
    stop = asyncio.Event()
    running = asyncio.create_task(bots.run(url, stop, lambda: bool(server.should_exit)))
    try:
        if duration is not None or until is not None:
            waits: set[asyncio.Future[Any]] = {serving}
            if until is not None:
                waits.add(asyncio.ensure_future(until.wait()))
            await asyncio.wait(waits, timeout=duration, return_when=asyncio.FIRST_COMPLETED)
            for waiting in waits - {serving}:
                waiting.cancel()
            server.should_exit = True
        await serving
    finally:
        stop.set()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await asyncio.wait_for(running, 5.0)
        server.should_exit = True
        if not serving.done():
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await serving
        if bots.marks:
            path = state_path(settings.data_dir)
            state = DemoState.load(path)
            state.marks.update(bots.marks)
            state.save(path)
    return info


def banner(info: DemoInfo, seed: int) -> Panel:
    """The framed banner; every rendered line fits 80 columns (pinned by a test)."""
    return Panel("\n".join(banner_lines(info)), title=f"tradehall demo (seed {seed})", expand=False)


def demo(
    seed: int = typer.Option(7, "--seed", help="Seed of the price process and the bots (reproducible)."),
    host: str = typer.Option("127.0.0.1", help="Interface to listen on."),
    port: int = typer.Option(8000, help="TCP port."),
    data_dir: Path | None = typer.Option(None, help="Data directory (default ./var, TRADEHALL_DATA_DIR)."),
    interval: float = typer.Option(1.0, help="Seconds between two bot rounds and two feed steps."),
    duration: float | None = typer.Option(None, help="Stop after this many seconds (default: until Ctrl-C)."),
) -> None:
    """Start the server with demo markets, users, a simulated feed and market-making bots; Ctrl-C stops
    it cleanly."""
    from uvicorn.loops.auto import auto_loop_factory

    from tradehall.cli.serve_cmd import _configure_logs

    _configure_logs(json_logs=False)
    settings = Settings() if data_dir is None else Settings(data_dir=data_dir)
    console = Console()

    def show(info: DemoInfo) -> None:
        console.print(banner(info, seed))

    # uvloop when installed (uvicorn[standard]), as `uvicorn.run` would choose; httptools likewise
    with contextlib.suppress(KeyboardInterrupt), asyncio.Runner(loop_factory=auto_loop_factory()) as runner:
        runner.run(
            run_demo(
                settings,
                host=host,
                port=port,
                seed_value=seed,
                interval=interval,
                on_ready=show,
                duration=duration,
            )
        )
    console.print("demo stopped")
