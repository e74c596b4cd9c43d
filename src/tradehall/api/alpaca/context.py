"""Who calls the Alpaca surface, which account it trades, and which tradehall market an Alpaca symbol is.

Credentials: Alpaca sends two headers, `APCA-API-KEY-ID` and `APCA-API-SECRET-KEY`. They are a tradehall
API key's `key_id` and its secret (`api_key`, shown once at `POST /auth/api-keys`): the secret is verified
as `X-API-Key` would be (hashed, cached, expiry, scopes), and the id must be the id of that very key. An
`Authorization: Bearer <tradehall JWT>` (alpaca-py's `oauth_token`) is accepted too.

The account: a key bound to an account trades that account; an unbound key (or a token) the user's
oldest active cash account, looked up in the read models and remembered for `ACCOUNT_TTL_SECONDS`.

Assets: every spot market is the crypto asset `BASE/QUOTE`; when two spot markets share base and quote
(one instrument on several venues) the first by symbol is the asset and the others are not exposed.
A symbol may also be given as `BASEQUOTE` (Alpaca's position symbols), as the tradehall symbol, or as
the asset's UUID.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import structlog
from starlette.requests import HTTPConnection

from tradehall.api.alpaca.ids import asset_uuid
from tradehall.api.auth import Principal
from tradehall.api.errors import ApiError, forbidden, not_found, unauthorized
from tradehall.api.gateway import Gateway
from tradehall.domain.enums import MarketKind
from tradehall.domain.errors import Code
from tradehall.domain.market import MarketSpec
from tradehall.engine import views
from tradehall.store import queries

ACCOUNT_TTL_SECONDS = 5.0
"""How long the choice of an unbound key's account is remembered (a cash account rarely closes)."""


@dataclass(frozen=True, slots=True)
class Asset:
    """A spot market as Alpaca's crypto asset."""

    symbol: str
    """Alpaca's `BASE/QUOTE`."""
    market: str
    """The tradehall market's symbol."""
    asset_id: str
    spec: MarketSpec


class Assets:
    """The Alpaca symbols of the spot markets; rebuilt when a lookup misses and markets were added."""

    def __init__(self) -> None:
        self._by_name: dict[str, Asset] = {}
        self._by_market: dict[str, Asset] = {}
        self._known = -1

    def refresh(self, gateway: Gateway) -> bool:
        """Rebuild from the engine's markets when their number changed; True if it did."""
        symbols = views.market_symbols(gateway.engine)
        if len(symbols) == self._known:
            return False
        by_name: dict[str, Asset] = {}
        by_market: dict[str, Asset] = {}
        for symbol in sorted(symbols):
            spec = gateway.spec(symbol)
            if spec.kind is not MarketKind.SPOT:
                continue
            name = f"{spec.base}/{spec.quote}"
            if name in by_name:
                continue
            asset = Asset(name, symbol, asset_uuid(symbol), spec)
            by_market[symbol] = asset
            for alias in (name, spec.base + spec.quote, symbol, asset.asset_id):
                by_name.setdefault(alias, asset)
        self._by_name, self._by_market, self._known = by_name, by_market, len(symbols)
        return True

    def find(self, gateway: Gateway, name: str) -> Asset | None:
        asset = self._by_name.get(name)
        if asset is None and self.refresh(gateway):
            asset = self._by_name.get(name)
        return asset

    def get(self, gateway: Gateway, name: str) -> Asset:
        """The asset `name` names, else 404 `40410000`."""
        asset = self.find(gateway, name)
        if asset is None:
            raise not_found(f"asset not found for {name}")
        return asset

    def of_market(self, gateway: Gateway, market: str) -> Asset | None:
        """The asset of tradehall market `market`; None for markets the surface does not expose."""
        asset = self._by_market.get(market)
        if asset is None and self.refresh(gateway):
            asset = self._by_market.get(market)
        return asset

    def all(self, gateway: Gateway) -> list[Asset]:
        self.refresh(gateway)
        return sorted(self._by_market.values(), key=lambda asset: asset.symbol)


class AlpacaSurface:
    """What the Alpaca routes share: the gateway, the asset map, the accounts of unbound keys."""

    def __init__(self, gateway: Gateway) -> None:
        self.gateway = gateway
        self.assets = Assets()
        self._accounts: dict[str, tuple[str, float]] = {}

    async def principal(self, connection: HTTPConnection) -> Principal:
        """The caller (401 `40110000` for missing or wrong credentials), rate limited like the native API."""
        headers = connection.headers
        principal = await self.authenticate(
            headers.get("apca-api-key-id"),
            headers.get("apca-api-secret-key"),
            headers.get("authorization"),
        )
        self.gateway.limiter.check(principal.limiter_key)
        structlog.contextvars.bind_contextvars(user=principal.username)
        return principal

    async def authenticate(
        self, key_id: str | None, secret: str | None, authorization: str | None = None
    ) -> Principal:
        if key_id and secret:
            principal = await self.gateway.auth.from_api_key(secret)
            if principal.key_id != key_id:
                raise unauthorized("the key id does not belong to this secret")
            return principal
        if authorization:
            return await self.gateway.auth.authenticate(authorization, None)
        raise unauthorized()

    async def account_id(self, principal: Principal) -> str:
        """The account the caller trades (see the module's docstring); 403 `40310000` when it has none."""
        if principal.account_id is not None:
            return principal.account_id
        cached = self._accounts.get(principal.user_id)
        now = time.monotonic()
        if cached is not None and cached[1] > now:
            return cached[0]
        gateway = self.gateway
        await gateway.service.read_barrier()
        rows = await gateway.service.store.call(queries.list_accounts, principal.user_id)
        for row in rows:
            if row.kind == "cash" and row.status == "active":
                self._accounts[principal.user_id] = (row.id, now + ACCOUNT_TTL_SECONDS)
                return row.id
        raise forbidden("this user has no active cash account: create one or bind the API key to an account")

    def forget_account(self, user_id: str) -> None:
        self._accounts.pop(user_id, None)


def invalid(message: str) -> ApiError:
    """An order or parameter Alpaca would refuse as unprocessable (422 `42210000`)."""
    return ApiError(Code.INVALID_ORDER, message)


def bad_request(message: str) -> ApiError:
    """A malformed parameter (400 `40010000`)."""
    return ApiError(Code.INVALID_REQUEST, message)
