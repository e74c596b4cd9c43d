"""The Python SDK: `Client` (sync) and `AsyncClient` (async) over httpx, `Stream` over websockets.

Both clients describe each call once (`_Endpoints`: method, path, query, body) and differ only in how
they send it. Responses are the API's JSON objects (decimals as strings); a refusal raises
`ApiError` with the contract's `status` and `code`. The client depends on nothing of the server.

Over 400 lines on purpose: one endpoint table serves both clients, and most of the length is one
short, typed method per API call; splitting by resource would split that one table.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

import httpx
import websockets

Json = dict[str, Any]


class ApiError(Exception):
    """A problem+json answer: `status` (HTTP), `code` (docs/reference.md), `detail`, `correlation_id`."""

    def __init__(
        self, status: int, code: str, detail: str, correlation_id: str = "", body: Any = None
    ) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.correlation_id = correlation_id
        self.body = body


@dataclass(frozen=True, slots=True)
class Call:
    method: str
    path: str
    params: dict[str, Any] | None = None
    body: Any = None
    auth: bool = True


def _clean(values: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if value is not None}


class _Endpoints:
    """Each endpoint of docs/reference.md once; `_send` is sync in `Client`, async in `AsyncClient`."""

    def __init__(self, base_url: str, token: str | None, api_key: str | None) -> None:
        self.base_url = base_url.rstrip("/")
        self._auth = _Auth(token, api_key)

    def _send(self, call: Call) -> Any:
        raise NotImplementedError

    def _request_options(self, call: Call) -> dict[str, Any]:
        """What `call` sends besides its method and path: its query, its JSON body and, where the
        endpoint needs it, the credentials."""
        headers = self._auth.headers() if call.auth else {}
        return {"params": call.params, "json": call.body, "headers": headers}

    # auth
    def register(self, username: str, password: str) -> Any:
        return self._send(
            Call("POST", "/auth/register", body={"username": username, "password": password}, auth=False)
        )

    def token(self, username: str, password: str) -> Any:
        return self._send(
            Call("POST", "/auth/token", body={"username": username, "password": password}, auth=False)
        )

    def create_api_key(
        self,
        label: str | None = None,
        expires_at: str | None = None,
        scopes: list[str] | None = None,
        account_id: str | None = None,
    ) -> Any:
        """A new key `{key_id, api_key, label, created_at, expires_at, scopes, account_id}`; `api_key` is
        the secret, shown this once. `expires_at` RFC 3339; `scopes` ["read"] or ["read", "trade"]
        (the default); `account_id` binds the key to that one account."""
        body = _clean({"label": label, "expires_at": expires_at, "scopes": scopes, "account_id": account_id})
        return self._send(Call("POST", "/auth/api-keys", body=body))

    def api_keys(self, limit: int = 100, cursor: str | None = None) -> Any:
        """The caller's keys, newest first: `{items: [{key_id, label, created_at, last_used_at,
        expires_at, scopes, account_id}], next_cursor}`; never a secret."""
        return self._send(Call("GET", "/auth/api-keys", params=_clean({"limit": limit, "cursor": cursor})))

    def delete_api_key(self, key_id: str) -> Any:
        return self._send(Call("DELETE", f"/auth/api-keys/{key_id}"))

    def me(self) -> Any:
        return self._send(Call("GET", "/auth/me"))

    def create_user(self, username: str, password: str, role: str = "trader") -> Any:
        return self._send(
            Call("POST", "/admin/users", body={"username": username, "password": password, "role": role})
        )

    def users(self, limit: int = 100, cursor: str | None = None) -> Any:
        """Admin: every user, oldest first: `{items: [{user_id, username, role, created_at}],
        next_cursor}`."""
        return self._send(Call("GET", "/admin/users", params=_clean({"limit": limit, "cursor": cursor})))

    # accounts
    def create_account(
        self,
        currency: str = "USD",
        kind: str = "cash",
        initial_balance: str | None = None,
        tier: str | None = None,
        cost_basis: str | None = None,
    ) -> Any:
        """`cost_basis`: "fifo", "lifo" or "average" (the server's default when omitted)."""
        body = _clean(
            {
                "kind": kind,
                "currency": currency,
                "initial_balance": initial_balance,
                "tier": tier,
                "cost_basis": cost_basis,
            }
        )
        return self._send(Call("POST", "/accounts", body=body))

    def accounts(self) -> Any:
        return self._send(Call("GET", "/accounts"))

    def account(self, account_id: str) -> Any:
        return self._send(Call("GET", f"/accounts/{account_id}"))

    def deposit(
        self, account_id: str, amount: str, currency: str | None = None, cost_price: str | None = None
    ) -> Any:
        """`cost_price`: what deposited units of a spot base cost (their basis); without it, none."""
        return self._send(
            Call(
                "POST",
                f"/admin/accounts/{account_id}/deposit",
                body=_clean({"amount": amount, "currency": currency, "cost_price": cost_price}),
            )
        )

    def ledger(self, account_id: str, limit: int = 100, cursor: str | None = None) -> Any:
        """Every balance change of the account, newest first: `{id, type, amount, currency,
        balance_after, market?, order_id?, trade_id?, at}` with `next_cursor`."""
        params = _clean({"limit": limit, "cursor": cursor})
        return self._send(Call("GET", f"/accounts/{account_id}/ledger", params=params))

    def tiers(self) -> Any:
        return self._send(Call("GET", "/tiers", auth=False))

    # markets
    def markets(self, instrument: str | None = None) -> Any:
        """Every market, or the venues of one instrument."""
        params = None if instrument is None else {"instrument": instrument}
        return self._send(Call("GET", "/markets", params=params, auth=False))

    def market(self, symbol: str) -> Any:
        return self._send(Call("GET", f"/markets/{symbol}", auth=False))

    def book(self, symbol: str, depth: int = 20) -> Any:
        return self._send(Call("GET", f"/markets/{symbol}/book", params={"depth": depth}, auth=False))

    def ticker(self, symbol: str) -> Any:
        return self._send(Call("GET", f"/markets/{symbol}/ticker", auth=False))

    def market_trades(self, symbol: str, limit: int = 100, cursor: str | None = None) -> Any:
        return self._send(
            Call(
                "GET",
                f"/markets/{symbol}/trades",
                params=_clean({"limit": limit, "cursor": cursor}),
                auth=False,
            )
        )

    def candles(
        self,
        symbol: str,
        interval: str = "1m",
        start: str | None = None,
        end: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
    ) -> Any:
        params = _clean({"interval": interval, "start": start, "end": end, "limit": limit, "cursor": cursor})
        return self._send(Call("GET", f"/markets/{symbol}/candles", params=params, auth=False))

    def create_market(self, **spec: Any) -> Any:
        return self._send(Call("POST", "/admin/markets", body=_clean(spec)))

    def halt_market(self, symbol: str) -> Any:
        return self._send(Call("POST", f"/admin/markets/{symbol}/halt"))

    def resume_market(self, symbol: str) -> Any:
        return self._send(Call("POST", f"/admin/markets/{symbol}/resume"))

    def settle_market(self, symbol: str, outcome: str) -> Any:
        return self._send(Call("POST", f"/admin/markets/{symbol}/settle", body={"outcome": outcome}))

    def void_market(self, symbol: str) -> Any:
        return self._send(Call("POST", f"/admin/markets/{symbol}/cancel"))

    def set_price(self, symbol: str, price: str, bid: str | None = None, ask: str | None = None) -> Any:
        body = _clean({"price": price, "bid": bid, "ask": ask})
        return self._send(Call("POST", f"/admin/markets/{symbol}/price", body=body))

    def held_settlements(self) -> Any:
        return self._send(Call("GET", "/admin/settlements"))

    def confirm_settlement(self, symbol: str) -> Any:
        return self._send(Call("POST", f"/admin/settlements/{symbol}/confirm"))

    def reject_settlement(self, symbol: str) -> Any:
        return self._send(Call("POST", f"/admin/settlements/{symbol}/reject"))

    def system_accounts(self) -> Any:
        """The venue's system accounts (admin): items `{name, currency, balance}`."""
        return self._send(Call("GET", "/admin/system-accounts"))

    def conservation(self) -> Any:
        """Per currency (admin): `{currency, deposits, withdrawals, user_balances, system_balances,
        difference}`; `difference` is always "0"."""
        return self._send(Call("GET", "/admin/conservation"))

    def create_transfer(
        self,
        transfer_id: str,
        account_id: str,
        amount: str,
        from_shard: str,
        to_shard: str,
        currency: str | None = None,
    ) -> Any:
        """A cluster's cross-shard transfer of collateral (admin; docs/cluster.md)."""
        body = _clean(
            {
                "transfer_id": transfer_id,
                "account_id": account_id,
                "amount": amount,
                "currency": currency,
                "from_shard": from_shard,
                "to_shard": to_shard,
            }
        )
        return self._send(Call("POST", "/admin/transfers", body=body))

    def transfer(self, transfer_id: str) -> Any:
        return self._send(Call("GET", f"/admin/transfers/{transfer_id}"))

    def move_clock(self, advance_seconds: str | float | None = None, set_to: str | None = None) -> Any:
        """Moves a TRADEHALL_CLOCK=manual server's clock forward (admin); answers `{now}`."""
        body = _clean({"advance_seconds": advance_seconds, "set_to": set_to})
        return self._send(Call("POST", "/admin/clock", body=body))

    def apply_funding(self, symbol: str, rate: str) -> Any:
        return self._send(Call("POST", f"/admin/markets/{symbol}/funding", body={"rate": rate}))

    def set_leverage(self, account_id: str, market: str, leverage: str) -> Any:
        body = {"market": market, "leverage": leverage}
        return self._send(Call("POST", f"/accounts/{account_id}/leverage", body=body))

    # orders
    def place_order(
        self,
        account_id: str,
        market: str,
        side: str,
        quantity: str,
        price: str | None = None,
        type: str | None = None,
        **extra: Any,
    ) -> Any:
        order_type = type or ("limit" if price is not None else "market")
        body = _clean(
            {
                "account_id": account_id,
                "market": market,
                "side": side,
                "type": order_type,
                "quantity": quantity,
            }
            | {"price": price}
            | extra
        )
        return self._send(Call("POST", "/orders", body=body))

    def place_smart_order(
        self,
        account_id: str,
        instrument: str,
        side: str,
        quantity: str,
        price: str | None = None,
        type: str | None = None,
        **extra: Any,
    ) -> Any:
        """A smart order (`venue: "smart"`): split across the markets listing `instrument`; answers the
        parent with its `children`."""
        return self.place_order(account_id, instrument, side, quantity, price, type, venue="smart", **extra)

    def order_execution(self, order_id: str) -> Any:
        """An order's execution analytics: arrival and VWAP slippage, shortfall, fill ratio, markouts."""
        return self._send(Call("GET", f"/orders/{order_id}/execution"))

    def execution_analytics(
        self,
        group_by: str = "venue",
        account_id: str | None = None,
        market: str | None = None,
        start: str | None = None,
        end: str | None = None,
    ) -> Any:
        """Execution analytics grouped by venue, market, account, session or day."""
        params = _clean(
            {"group_by": group_by, "account_id": account_id, "market": market, "start": start, "end": end}
        )
        return self._send(Call("GET", "/analytics/execution", params=params))

    def place_bracket(
        self,
        account_id: str,
        market: str,
        side: str,
        quantity: str,
        price: str | None = None,
        *,
        take_profit: str,
        stop_loss: str,
        stop_loss_limit: str | None = None,
        **extra: Any,
    ) -> Any:
        """An entry (limit at `price`, else market) whose take-profit and stop-loss exits are placed
        when it fills, sized to its fills; one cancels the other."""
        return self.place_order(
            account_id,
            market,
            side,
            quantity,
            price,
            order_class="bracket",
            take_profit={"limit_price": take_profit},
            stop_loss=_clean({"stop_price": stop_loss, "limit_price": stop_loss_limit}),
            **extra,
        )

    def place_oco(
        self,
        account_id: str,
        market: str,
        side: str,
        quantity: str,
        *,
        take_profit: str,
        stop_loss: str,
        stop_loss_limit: str | None = None,
        **extra: Any,
    ) -> Any:
        """An exit pair for an open position: a take-profit limit and a stop-loss, one cancels the other."""
        return self.place_order(
            account_id,
            market,
            side,
            quantity,
            type="limit",
            order_class="oco",
            take_profit={"limit_price": take_profit},
            stop_loss=_clean({"stop_price": stop_loss, "limit_price": stop_loss_limit}),
            **extra,
        )

    def order(self, order_id: str) -> Any:
        return self._send(Call("GET", f"/orders/{order_id}"))

    def orders(
        self,
        account_id: str | None = None,
        market: str | None = None,
        status: str = "open",
        limit: int = 100,
        cursor: str | None = None,
    ) -> Any:
        params = _clean(
            {"account_id": account_id, "market": market, "status": status, "limit": limit, "cursor": cursor}
        )
        return self._send(Call("GET", "/orders", params=params))

    def cancel_order(self, order_id: str) -> Any:
        return self._send(Call("DELETE", f"/orders/{order_id}"))

    def cancel_all(self, account_id: str, market: str | None = None) -> Any:
        return self._send(
            Call("DELETE", "/orders", params=_clean({"account_id": account_id, "market": market}))
        )

    def place_trailing_stop(
        self,
        account_id: str,
        market: str,
        side: str,
        quantity: str,
        trail_percent: str | None = None,
        trail_price: str | None = None,
        activation_price: str | None = None,
        trigger: str | None = None,
        **extra: Any,
    ) -> Any:
        """A trailing stop: exactly one of `trail_percent` ("1.5" = 1.5 %) and `trail_price`; the order
        answered shows its watermark `hwm` and its current `stop_price`."""
        terms = {
            "trail_percent": trail_percent,
            "trail_price": trail_price,
            "activation_price": activation_price,
            "trigger": trigger,
        }
        return self.place_order(account_id, market, side, quantity, None, "trailing_stop", **(terms | extra))

    def amend_order(
        self,
        order_id: str,
        price: str | None = None,
        quantity: str | None = None,
        stop_price: str | None = None,
        trail_percent: str | None = None,
        trail_price: str | None = None,
        **extra: Any,
    ) -> Any:
        """`quantity` is the new total (filled included); `stop_price` moves an untriggered stop;
        `trail_percent`/`trail_price` re-trail an untriggered trailing stop."""
        fields = {
            "price": price,
            "quantity": quantity,
            "stop_price": stop_price,
            "trail_percent": trail_percent,
            "trail_price": trail_price,
        }
        body = _clean(fields | extra)
        return self._send(Call("PATCH", f"/orders/{order_id}", body=body))

    # positions and fills
    def positions(self, account_id: str | None = None) -> Any:
        return self._send(Call("GET", "/positions", params=_clean({"account_id": account_id})))

    def close_position(self, market: str, account_id: str) -> Any:
        return self._send(Call("POST", f"/positions/{market}/close", body={"account_id": account_id}))

    def trades(
        self,
        account_id: str | None = None,
        market: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
    ) -> Any:
        params = _clean({"account_id": account_id, "market": market, "limit": limit, "cursor": cursor})
        return self._send(Call("GET", "/trades", params=params))

    # live trading sessions
    def start_session(
        self,
        account_id: str,
        markets: list[str],
        strategies: list[Json],
        settings: Json | None = None,
    ) -> Any:
        """A new session `{id, account_id, status, markets, strategies, settings, ...}`; `strategies`
        items are `{name, weight?, parameters?}`, `settings` as docs/reference.md (decimals as strings)."""
        body = {
            "account_id": account_id,
            "markets": markets,
            "strategies": strategies,
            "settings": settings or {},
        }
        return self._send(Call("POST", "/sessions", body=body))

    def sessions(self, account_id: str | None = None, limit: int = 100, cursor: str | None = None) -> Any:
        params = _clean({"account_id": account_id, "limit": limit, "cursor": cursor})
        return self._send(Call("GET", "/sessions", params=params))

    def session(self, session_id: str) -> Any:
        return self._send(Call("GET", f"/sessions/{session_id}"))

    def pause_session(self, session_id: str) -> Any:
        return self._send(Call("POST", f"/sessions/{session_id}/pause"))

    def resume_session(self, session_id: str) -> Any:
        return self._send(Call("POST", f"/sessions/{session_id}/resume"))

    def stop_session(self, session_id: str) -> Any:
        return self._send(Call("POST", f"/sessions/{session_id}/stop"))

    def session_signals(self, session_id: str, limit: int = 100, cursor: str | None = None) -> Any:
        params = _clean({"limit": limit, "cursor": cursor})
        return self._send(Call("GET", f"/sessions/{session_id}/signals", params=params))

    def session_decisions(self, session_id: str, limit: int = 100, cursor: str | None = None) -> Any:
        params = _clean({"limit": limit, "cursor": cursor})
        return self._send(Call("GET", f"/sessions/{session_id}/decisions", params=params))

    def session_orders(self, session_id: str, limit: int = 100, cursor: str | None = None) -> Any:
        params = _clean({"limit": limit, "cursor": cursor})
        return self._send(Call("GET", f"/sessions/{session_id}/orders", params=params))

    def session_performance(self, session_id: str) -> Any:
        return self._send(Call("GET", f"/sessions/{session_id}/performance"))

    # operations
    def health(self) -> Any:
        return self._send(Call("GET", "/health", auth=False))

    def ready(self) -> Any:
        return self._send(Call("GET", "/ready", auth=False))

    # alerts (admin)
    def alerts(
        self, status: str | None = None, rule: str | None = None, limit: int = 100, cursor: str | None = None
    ) -> Any:
        """The monitor's alert history, newest first: `{id, rule, severity, status, value, started_at,
        resolved_at}` with `next_cursor`; `status` "firing" or "resolved"."""
        params = _clean({"status": status, "rule": rule, "limit": limit, "cursor": cursor})
        return self._send(Call("GET", "/alerts", params=params))

    def alert_rules(self) -> Any:
        """`{health, items}`: the system's health and the alert rules with their state."""
        return self._send(Call("GET", "/alerts/rules"))


def _raise_for(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        raise ApiError(
            response.status_code,
            str(body.get("code", "error")),
            str(body.get("detail", response.reason_phrase)),
            str(body.get("correlation_id", "")),
            body,
        )
    raise ApiError(response.status_code, "error", response.text[:200] or response.reason_phrase)


def _decode(response: httpx.Response) -> Any:
    _raise_for(response)
    if response.status_code == 204 or not response.content:
        return None
    return response.json()


class _Auth:
    def __init__(self, token: str | None, api_key: str | None) -> None:
        self.token = token
        self.api_key = api_key

    def headers(self) -> dict[str, str]:
        if self.api_key:
            return {"X-API-Key": self.api_key}
        if self.token:
            return {"Authorization": f"Bearer {self.token}"}
        return {}


class Client(_Endpoints):
    """Synchronous client: `Client(url, api_key=...)` or `Client(url).login(user, password)`."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, api_key)
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout, transport=transport)

    def _send(self, call: Call) -> Any:
        return _decode(self._http.request(call.method, call.path, **self._request_options(call)))

    def login(self, username: str, password: str) -> Self:
        self._auth.token = self.token(username, password)["access_token"]
        return self

    @property
    def auth_token(self) -> str | None:
        return self._auth.token

    @property
    def api_key(self) -> str | None:
        return self._auth.api_key

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_Endpoints):
    """Asynchronous client with the same methods (awaitable); `stream()` opens the WebSocket."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        *,
        token: str | None = None,
        api_key: str | None = None,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, api_key)
        self._http = httpx.AsyncClient(base_url=self.base_url, timeout=timeout, transport=transport)

    async def _request(self, call: Call) -> Any:
        return _decode(await self._http.request(call.method, call.path, **self._request_options(call)))

    def _send(self, call: Call) -> Any:
        return self._request(call)

    async def login(self, username: str, password: str) -> Self:
        self._auth.token = (await self.token(username, password))["access_token"]
        return self

    def stream(self) -> Stream:
        return Stream(self.base_url, token=self._auth.token, api_key=self._auth.api_key)

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()


def ws_url(base_url: str) -> str:
    if base_url.startswith("https://"):
        return "wss://" + base_url[len("https://") :] + "/ws"
    if base_url.startswith("http://"):
        return "ws://" + base_url[len("http://") :] + "/ws"
    return base_url.rstrip("/") + "/ws"


class Stream:
    """The WebSocket: `async with client.stream() as ws: await ws.subscribe([...]); async for m in ws`."""

    def __init__(self, base_url: str, *, token: str | None = None, api_key: str | None = None) -> None:
        self.url = ws_url(base_url)
        self.token = token
        self.api_key = api_key
        self._socket: Any = None
        self._next_id = 0
        self._replies: dict[int, asyncio.Future[Json]] = {}
        self._messages: asyncio.Queue[Json | None] = asyncio.Queue()
        self._reader: asyncio.Task[None] | None = None
        self.close_code: int | None = None

    async def __aenter__(self) -> Self:
        self._socket = await websockets.connect(self.url, max_size=2**22)
        self._reader = asyncio.create_task(self._read())
        if self.token or self.api_key:
            await self.auth()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    async def close(self) -> None:
        if self._socket is not None:
            await self._socket.close()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader

    async def _read(self) -> None:
        try:
            async for raw in self._socket:
                message = json.loads(raw)
                ref = (
                    message.get("id") if message.get("op") in ("order", "cancel", "batch", "error") else None
                )
                if isinstance(ref, int) and ref in self._replies:
                    self._replies.pop(ref).set_result(message)
                    continue
                await self._messages.put(message)
        except websockets.ConnectionClosed:
            pass
        finally:
            self.close_code = getattr(self._socket, "close_code", None)
            for future in self._replies.values():
                if not future.done():
                    future.set_exception(ConnectionError("the WebSocket closed"))
            await self._messages.put(None)

    async def send(self, message: Json) -> None:
        await self._socket.send(json.dumps(message))

    async def auth(self) -> Json:
        await self.send(
            {"op": "auth", "token": self.token} if self.token else {"op": "auth", "api_key": self.api_key}
        )
        return await self.expect("authenticated")

    async def subscribe(self, channels: Iterable[str]) -> Json:
        await self.send({"op": "subscribe", "channels": list(channels)})
        return await self.expect("subscribed")

    async def unsubscribe(self, channels: Iterable[str]) -> Json:
        await self.send({"op": "unsubscribe", "channels": list(channels)})
        return await self.expect("unsubscribed")

    async def ping(self) -> Json:
        await self.send({"op": "ping"})
        return await self.expect("pong")

    async def request(self, op: str, body: Json) -> Json:
        """An order (or cancel) over the socket; resolves with the server's reply to it."""
        self._next_id += 1
        ref = self._next_id
        future: asyncio.Future[Json] = asyncio.get_running_loop().create_future()
        self._replies[ref] = future
        await self.send({"op": op, "id": ref, **body})
        reply = await future
        if reply.get("op") == "error":
            raise ApiError(0, str(reply.get("code")), str(reply.get("message")), body=reply)
        return reply

    async def place_order(self, **body: Any) -> Json:
        return dict((await self.request("order", _clean(body)))["data"])

    async def cancel_order(self, order_id: str) -> Json:
        return dict((await self.request("cancel", {"order_id": order_id}))["data"])

    async def batch(self, requests: list[Json]) -> list[Json]:
        """Up to 100 orders and cancels (`{"op": "order", ...}`, `{"op": "cancel", "order_id"}`) in one
        frame; their replies in the same order, each as the request alone would have been answered
        (an `error` reply is returned, not raised)."""
        reply = await self.request("batch", {"requests": requests})
        return list(reply["replies"])

    async def next(self, timeout: float | None = 10.0) -> Json:
        message = await asyncio.wait_for(self._messages.get(), timeout)
        if message is None:
            raise ConnectionError(f"the WebSocket closed (code {self.close_code})")
        return message

    async def expect(self, op: str, timeout: float = 10.0) -> Json:
        """The next control message `op` (data messages that arrive first stay queued, in order)."""
        held: list[Json] = []
        try:
            while True:
                message = await self.next(timeout)
                if message.get("op") == op:
                    return message
                if message.get("op") == "error" and "channel" not in message:
                    raise ApiError(0, str(message.get("code")), str(message.get("message")))
                held.append(message)
        finally:
            if held:
                rest: list[Json | None] = []
                while not self._messages.empty():
                    rest.append(self._messages.get_nowait())
                for item in [*held, *rest]:
                    self._messages.put_nowait(item)

    def __aiter__(self) -> AsyncIterator[Json]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Json]:
        while True:
            message = await self._messages.get()
            if message is None:
                return
            yield message
