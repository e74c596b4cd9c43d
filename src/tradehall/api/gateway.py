"""The gateway: what the routes share (service, auth, limits), injected with `Depends`.

It turns engine outcomes into API outcomes: a rejection event becomes an `ApiError` with the
event's code; ownership is checked against the engine's live accounts (404 unknown, 403 foreign).
"""

from __future__ import annotations

import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from contextvars import ContextVar
from decimal import Decimal
from typing import Annotated, Any, Protocol

import structlog
from fastapi import Depends, Request

from tradehall.api import convert
from tradehall.api.auth import TRADE, Authenticator, Principal
from tradehall.api.candles import CandleBook
from tradehall.api.errors import ApiError, forbidden, not_found
from tradehall.api.metrics import TRADES_TOTAL
from tradehall.api.ratelimit import TokenBucketLimiter
from tradehall.domain.commands import AnyCommand
from tradehall.domain.errors import Code
from tradehall.domain.events import AnyEvent, CommandRejected, OrderRejected, TradeExecuted
from tradehall.domain.fixedpoint import units_of
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine, views
from tradehall.engine.views import AccountView, BookView, MarketView
from tradehall.journal.records import JournalRecord
from tradehall.service.cluster.cached import SharedResult
from tradehall.service.cluster.routing import READY_CACHE_SECONDS, ClusterGateway, ClusterUnavailableError
from tradehall.service.runner import CommandResult, RunnerError
from tradehall.service.settings import Settings
from tradehall.service.transport import EngineUnavailableError
from tradehall.service.wiring import Service
from tradehall.store import queries
from tradehall.store.types import ns_of_utc, utc_of_ns
from tradehall.strategies.backtest.jobs import BacktestJobs
from tradehall.strategies.registry import StrategyRegistry

DAY_NS = 86_400 * 1_000_000_000
ENGINE_RETRY_AFTER_SECONDS = 1
COMMAND_SENT: ContextVar[bool] = ContextVar("command_sent", default=False)
"""True once the request being served has sent a command to the engine: until then a refusal changed
nothing, so the order fast path may check again after its replica caught up (`TradehallApp`)."""


class ReadyCheck(Protocol):
    def ready_check(self) -> tuple[bool, list[dict[str, object]]]: ...


class VolumeTracker:
    """Rolling 24-hour traded quantity (lots) per market.

    The window survives a restart: `load` takes the last 24 hours of trades from the read models when
    the service starts, `on_records` every durable trade from then on. Trade ids grow with the
    journal, so the trades the listener has seen are exactly those from the first one it saw: `load`
    takes only older ones, and nothing is counted twice whichever comes first. The first one is kept per
    market: in a cluster each shard numbers its trades in its own id range.
    """

    def __init__(self, now_ns: Callable[[], int] = time.time_ns) -> None:
        self.now_ns = now_ns
        """The sequencer's clock: trade times and the window's end read the same time."""
        self._trades: dict[str, deque[tuple[int, int]]] = {}
        self._totals: dict[str, int] = {}
        self._first_live: dict[str, int] = {}

    def on_records(self, records: Sequence[JournalRecord]) -> None:
        for record in records:
            for event in record.events:
                if isinstance(event, TradeExecuted):
                    self._first_live.setdefault(event.market, event.trade_id)
                    self._trades.setdefault(event.market, deque()).append((event.ts, event.quantity))
                    self._totals[event.market] = self._totals.get(event.market, 0) + event.quantity
                    TRADES_TOTAL.labels(market=event.market).inc()

    def load(self, market: str, trades: Iterable[tuple[int, int, int]]) -> None:
        """Past trades `(trade id, time ns, lots)`, oldest first, from the read models."""
        first_live = self._first_live.get(market)
        older = [(ts, lots) for trade_id, ts, lots in trades if first_live is None or trade_id < first_live]
        if not older:
            return
        self._trades[market] = deque([*older, *self._trades.get(market, ())])
        self._totals[market] = self._totals.get(market, 0) + sum(lots for _, lots in older)

    def volume(self, market: str, now_ns: int | None = None) -> int:
        trades = self._trades.get(market)
        if not trades:
            return 0
        cutoff = (now_ns if now_ns is not None else self.now_ns()) - DAY_NS
        while trades and trades[0][0] < cutoff:
            _, lots = trades.popleft()
            self._totals[market] -= lots
        return self._totals.get(market, 0)


class Gateway:
    def __init__(self, settings: Settings, service: Service, authenticator: Authenticator) -> None:
        self.settings = settings
        self.service = service
        self.auth = authenticator
        self.limiter = TokenBucketLimiter(settings.rate_limit_per_second, settings.rate_limit_burst)
        self.volumes = VolumeTracker(service.runner.clock.now_ns)
        self.feeds: ReadyCheck | None = None
        """The feed registry (`marketdata.registry.FeedRegistry`) when feeds run in this process."""
        self.candles = CandleBook()
        self.strategies: StrategyRegistry = service.strategies
        """Every strategy a session or backtest may name (built-ins, entry points, the directory)."""
        self.backtests = BacktestJobs(
            settings.data_dir / "backtests",
            workers=settings.backtest_workers,
            database_url=settings.sqlalchemy_url,
        )
        """Background backtests (`POST /backtests`), each in its own process."""
        self.cluster: ClusterGateway | None = None
        """Set when this gateway fronts a cluster (docs/cluster.md, "Shards and routing"): commands go to
        their shard's leader, reads to that shard's replica; None: this process's engine."""
        self.store_check: SharedResult[bool] = SharedResult(self._check_store, READY_CACHE_SECONDS)
        """`/ready`'s read-model store check (a `SELECT 1` and the projector's cursor): public, so one
        round answers every request for a second and concurrent requests share it (as the shards' checks)."""

    async def _check_store(self) -> bool:
        reachable = await self.service.store_reachable()
        await self.service.refresh_projected()
        return reachable

    async def load_volumes(self) -> None:
        """The last 24 hours of trades from the read models into `volumes` (at start, after
        `volumes.on_records` listens): the ticker's `volume_24h` does not restart from zero."""
        await self.service.read_barrier()
        since = utc_of_ns(self.volumes.now_ns() - DAY_NS)
        symbols = [symbol for engine in self.engines() for symbol in views.market_symbols(engine)]
        for symbol in symbols:  # a cluster gateway: every shard's markets
            lot_size = self.spec(symbol).lot_size
            trades = await self.service.store.call(queries.trades_since, symbol, since)
            self.volumes.load(
                symbol,
                [
                    (trade_id, ns_of_utc(at), units_of(quantity, lot_size, "quantity"))
                    for trade_id, at, quantity in trades
                ],
            )

    @property
    def engine(self) -> Engine:
        cluster = self.cluster
        return self.service.engine if cluster is None else cluster.engine

    def engines(self) -> list[Engine]:
        """The engines whose markets this gateway lists: its own, or every shard's replica."""
        return [self.service.engine] if self.cluster is None else self.cluster.engines()

    def read_market(self, market: str) -> None:
        """In a cluster, this request reads the replica of `market`'s shard (404 for a market in none)."""
        if self.cluster is not None:
            self.cluster.read_shard_of_market(market)

    def read_instrument(self, instrument: str) -> None:
        if self.cluster is not None:
            self.cluster.read_shard_of_instrument(instrument)

    def read_order(self, order_id: int) -> None:
        """In a cluster, this request reads the replica of the shard that gave `order_id`."""
        if self.cluster is not None:
            self.cluster.read_shard_of_order(order_id)

    async def submit(self, command: AnyCommand) -> CommandResult:
        COMMAND_SENT.set(True)
        try:
            if self.cluster is not None:
                return await self.cluster.submit(command)
            return await self.service.submit(command)
        except ClusterUnavailableError as exc:  # no leader answered in time (a takeover too long)
            raise ApiError(
                Code.OVERLOADED, str(exc), headers={"Retry-After": str(ENGINE_RETRY_AFTER_SECONDS)}
            ) from exc
        except EngineUnavailableError as exc:
            # `serve --workers N`: the engine process is down, restarting or too busy. The command may
            # still be applied, so the client retries it as it is (a client_order_id deduplicates it).
            raise ApiError(
                Code.OVERLOADED,
                "the engine process did not answer in time; the command may or may not have been "
                "applied: retry it with the same client_order_id",
                headers={"Retry-After": str(ENGINE_RETRY_AFTER_SECONDS)},
            ) from exc
        except RunnerError as exc:
            # the runner is stopping (this process's shutdown) or the engine process answered with an
            # error (it is stopping): nothing was decided, so the same command may be sent again
            raise ApiError(
                Code.OVERLOADED,
                "the engine is not accepting commands (stopping or restarting): retry with the same "
                "client_order_id",
                headers={"Retry-After": str(ENGINE_RETRY_AFTER_SECONDS)},
            ) from exc

    def require_engine_process(self, feature: str) -> None:
        """409 `conflict` in a gateway process of `serve --workers N`: `feature` lives only in the
        engine process (sessions, the manual clock, feeds' held settlements) and is not forwarded."""
        if self.service.follower:
            raise ApiError(
                Code.CONFLICT,
                f"{feature} is not available with `tradehall serve --workers N`: "
                "run `tradehall serve --workers 1` to use it",
            )

    async def execute(self, command: AnyCommand) -> CommandResult:
        """Submit and turn a rejection event into the matching ApiError."""
        result = await self.submit(command)
        raise_rejection(result.events)
        return result

    def market(self, symbol: str) -> MarketView:
        """The market's view (404 when there is none)."""
        if self.cluster is not None:
            self.cluster.read_shard_of_market(symbol)
        market = views.market(self.engine, symbol)
        if market is None:
            raise not_found(f"market {symbol} not found")
        return market

    def book(self, symbol: str, depth: int) -> BookView:
        """The best `depth` levels of the market's book (404 when there is no such market)."""
        if self.cluster is not None:
            self.cluster.read_shard_of_market(symbol)
        book = views.book(self.engine, symbol, depth)
        if book is None:
            raise not_found(f"market {symbol} not found")
        return book

    def spec(self, symbol: str) -> MarketSpec:
        """The market's terms alone, for the hot paths (404 when there is none)."""
        if self.cluster is not None:
            self.cluster.read_shard_of_market(symbol)
        spec = views.spec(self.engine, symbol)
        if spec is None:
            raise not_found(f"market {symbol} not found")
        return spec

    def check_account(self, principal: Principal, account_id: str) -> None:
        """The caller's account exists and is theirs: 404 when there is none, 403 when it is another
        user's. Builds no view: order entry checks ownership on every request."""
        owner = views.account_owner(self.engine, account_id)
        if owner is None or owner == "system":
            raise not_found(f"account {account_id} not found")
        if owner != principal.user_id and not principal.is_admin:
            raise forbidden(f"account {account_id} belongs to another user")
        principal.check_account(account_id)  # a key bound to one account reaches no other (403)

    def account(self, principal: Principal, account_id: str) -> AccountView:
        """The caller's account (404/403 like `check_account`); in a cluster, merged across shards."""
        self.check_account(principal, account_id)
        account = self.find_account(account_id)
        assert account is not None  # checked above, and nothing ran in between
        return account

    def find_account(self, account_id: str) -> AccountView | None:
        """The account's view, no owner check; a cluster gateway's adds up what every shard holds
        (`ClusterGateway.account`: balances per currency, equity and P&L)."""
        cluster = self.cluster
        if cluster is None:
            return views.account(self.engine, account_id)
        return cluster.account(account_id)

    def account_dict(self, account: AccountView, peak_equity: Decimal | None = None) -> dict[str, Any]:
        """`AccountOut` of a view from `account`/`find_account`; a cluster gateway's adds `shards`, each
        shard's part (its balances back only that shard's orders and positions)."""
        cluster = self.cluster
        if cluster is None:
            return convert.account_dict(self.engine, account, peak_equity)
        engine = cluster.home_engine
        out = convert.account_dict(engine, account, peak_equity)
        out["shards"] = [
            convert.account_part_dict(engine, shard, part)
            for shard, part in cluster.account_parts(account.account_id)
        ]
        return out

    def account_ids_of(self, principal: Principal) -> list[str]:
        """The caller's accounts, sorted (a bound key's: its one account)."""
        bound = principal.account_id
        return [
            account_id
            for account_id in views.account_ids_of(self.engine, principal.user_id)
            if bound is None or account_id == bound
        ]

    def accounts_of(self, principal: Principal) -> list[AccountView]:
        """The views of the caller's accounts, sorted by id."""
        found = (self.find_account(account_id) for account_id in self.account_ids_of(principal))
        return [account for account in found if account is not None]

    def quote_places(self, spec: MarketSpec) -> int:
        return views.currency_places(self.engine, spec.quote)

    @staticmethod
    def new_account_id() -> str:
        return "acc_" + uuid.uuid4().hex[:20]


def raise_rejection(events: Sequence[AnyEvent]) -> None:
    if events and isinstance(events[0], OrderRejected | CommandRejected):
        event = events[0]
        raise ApiError(event.code, event.reason)


async def get_gateway(request: Request) -> Gateway:
    gateway: Gateway = request.app.state.gateway
    return gateway


async def correlation_id(request: Request) -> str:
    return str(getattr(request.state, "correlation_id", "") or "")


async def current_principal(request: Request, gateway: Annotated[Gateway, Depends(get_gateway)]) -> Principal:
    principal = await gateway.auth.authenticate(
        request.headers.get("authorization"), request.headers.get("x-api-key")
    )
    gateway.limiter.check(principal.limiter_key)
    structlog.contextvars.bind_contextvars(user=principal.username)
    return principal


async def admin_principal(
    request: Request, principal: Annotated[Principal, Depends(current_principal)]
) -> Principal:
    """An admin; an admin's `read` key may look (GET) but change nothing."""
    if not principal.is_admin:
        raise forbidden("admin role required")
    if request.method not in ("GET", "HEAD"):
        principal.require(TRADE)
    return principal


async def trading_principal(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
    """The caller, if it may trade: a key without the `trade` scope gets 403."""
    principal.require(TRADE)
    return principal


GatewayDep = Annotated[Gateway, Depends(get_gateway)]
PrincipalDep = Annotated[Principal, Depends(current_principal)]
TraderDep = Annotated[Principal, Depends(trading_principal)]
AdminDep = Annotated[Principal, Depends(admin_principal)]
CorrelationDep = Annotated[str, Depends(correlation_id)]
