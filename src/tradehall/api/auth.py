"""Authentication and authorisation: argon2 passwords, HS256 JWTs with expiry, hashed API keys, roles.

API keys are 32 random bytes, so a fast hash (SHA-256) is enough to store them: a brute force of the
hash is as hard as guessing the key. Passwords are low-entropy, hence argon2. Known keys are cached
in process; deleting a key drops it from the cache in the same request, so it stops working at once.
A key's expiry is checked on every use (cached or not), against the authenticator's clock.

A key's `last_used_at` is written at most once a minute per key (`LAST_USED_WRITE_SECONDS`), by a
background task off the request path: the cache never waits on the database. Listings show the exact
last use this process saw; the stored value trails it by at most that minute (and a shutdown flushes
what is pending).
Hashing runs in its own bounded pool (`api.passwords`) and logins are throttled before any hashing
(`api.login_throttle`): failed logins cannot starve the engine nor be guessed at full speed.
"""

from __future__ import annotations

import asyncio
import enum
import functools
import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import jwt
import structlog

from tradehall.api.errors import ApiError, forbidden, unauthorized
from tradehall.api.login_throttle import LoginThrottle, Tarpit
from tradehall.api.passwords import HashingPool, password_hasher
from tradehall.api.passwords import hash_password as hash_password
from tradehall.api.passwords import verify_password as verify_password
from tradehall.domain.errors import Code
from tradehall.service.settings import Settings
from tradehall.store import Store
from tradehall.store import repositories as repo
from tradehall.store.models import ApiKey

log = structlog.get_logger(__name__)

API_KEY_PREFIX = "th_"
JWT_ALGORITHM = "HS256"
ROLES = ("trader", "admin")
LAST_USED_WRITE_SECONDS = 60.0
"""A key's `last_used_at` is stored at most this often: the database is not written per request."""


def settings_password_hash(settings: Settings) -> Callable[[str], str]:
    """Hashes a password with the settings' argon2 costs (the admin user's at start)."""
    hasher = password_hasher(settings.password_hash_memory_kib, settings.password_hash_time_cost)
    return functools.partial(hash_password, hasher=hasher)


class Scope(enum.StrEnum):
    """What a credential may do. Every key can `read`; `trade` changes orders, positions and accounts."""

    READ = "read"
    TRADE = "trade"


ALL_SCOPES = frozenset(Scope)
DEFAULT_SCOPES = (Scope.READ, Scope.TRADE)
TRADE = Scope.TRADE  # module constant: the hot path checks it per order


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request: the user, their role, and the API key used (None for a token)."""

    user_id: str
    username: str
    role: str
    key_id: str | None = None
    scopes: frozenset[str] = ALL_SCOPES
    """A token has every scope; a key those it was given."""
    account_id: str | None = None
    """The one account a bound key acts on; None: any of the user's."""
    expires_at: float | None = None
    """A key's expiry (epoch seconds); None: it does not expire (or a token: see its `exp`)."""

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require(self, scope: str) -> None:
        """403 `forbidden` naming the missing scope."""
        if scope not in self.scopes:
            has = ", ".join(sorted(self.scopes))
            raise ApiError(
                Code.FORBIDDEN,
                f"this API key lacks the '{scope}' scope (it has: {has})",
                fields={"required_scope": str(scope)},
            )

    def check_account(self, account_id: str) -> None:
        """403 when a bound key reaches for another account than its own."""
        if self.account_id is not None and account_id != self.account_id:
            raise forbidden(f"this API key is bound to account {self.account_id}")

    @property
    def limiter_key(self) -> str:
        # one bucket per user, whatever key or token: more keys must not mean more requests
        return f"user:{self.user_id}"


# ---- revocation listeners (open WebSockets) ------------------------------------------------------

RevocationListener = Callable[[str, str | None], None]
"""Called with (user_id, key_id) when an API key is deleted, (user_id, None) when a user is disabled:
a credential checked once at a socket's start must stop working there too, at once."""


class Authenticator:
    def __init__(self, settings: Settings, store: Store, clock: Callable[[], float] = time.time) -> None:
        self.secret = settings.jwt_secret
        self.expiry_seconds = settings.jwt_expiry_seconds
        self.store = store
        self.clock = clock
        """Epoch seconds for key expiry and last use (tests replace it)."""
        self._keys: dict[str, _CachedKey] = {}
        self._used: dict[str, float] = {}  # key id -> its last use seen by this process
        self._unwritten: dict[str, float] = {}  # key id -> a last use the flush task is to store
        self._flush_task: asyncio.Task[None] | None = None
        self._tokens: dict[str, tuple[Principal, float]] = {}
        self.revocation_listeners: list[RevocationListener] = []
        self.broadcast_revocation: Callable[[str, str | None], Awaitable[None]] | None = None
        """With `serve --workers N`: tells the other gateways of a key deleted here."""
        self.hashing = HashingPool(
            settings.password_hash_workers,
            settings.password_hash_queue,
            password_hasher(settings.password_hash_memory_kib, settings.password_hash_time_cost),
        )
        self.throttle = LoginThrottle()
        self.tarpit = Tarpit(settings.login_tarpit_seconds)

    def close(self) -> None:
        self.hashing.close()

    # ---- tokens --------------------------------------------------------------------------------

    def issue_token(self, principal: Principal, now: float | None = None) -> tuple[str, int]:
        issued = int(now if now is not None else time.time())
        claims = {
            "sub": principal.user_id,
            "name": principal.username,
            "role": principal.role,
            "iat": issued,
            "exp": issued + self.expiry_seconds,
        }
        return jwt.encode(claims, self.secret, algorithm=JWT_ALGORITHM), self.expiry_seconds

    def decode_token(self, token: str) -> Principal:
        """Verified tokens are remembered until they expire: a signature check per request is costly."""
        cached = self._tokens.get(token)
        if cached is not None and cached[1] > time.time():
            return cached[0]
        principal, expires = self._verify_token(token)
        if len(self._tokens) >= 10_000:
            self._tokens.clear()
        self._tokens[token] = (principal, expires)
        return principal

    def _verify_token(self, token: str) -> tuple[Principal, float]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token, self.secret, algorithms=[JWT_ALGORITHM], options={"require": ["exp", "sub"]}
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token expired") from None
        except jwt.PyJWTError:
            raise unauthorized("invalid token") from None
        role = claims.get("role")
        if role not in ROLES or not isinstance(claims.get("sub"), str):
            raise unauthorized("invalid token")
        return Principal(str(claims["sub"]), str(claims.get("name", "")), str(role)), float(claims["exp"])

    # ---- passwords -----------------------------------------------------------------------------

    async def login(self, username: str, password: str, client_ip: str = "unknown") -> Principal:
        """Throttled before any work (429), hashed in the bounded pool (503 when full); only a wrong
        password counts as a failure, and a success clears the username's count. Both refusals are
        answered after the tarpit's pause."""
        wait = self.throttle.admit(username, client_ip)
        if wait > 0:
            held = await self.tarpit.hold(wait)
            raise self.throttle.refusal(wait - held)
        try:
            user = await self.store.call(repo.find_user_by_username, username)
            try:
                ok = await self.hashing.verify(user.password_hash if user is not None else None, password)
            except ApiError as refused:
                if refused.code is Code.OVERLOADED:
                    await self.tarpit.hold(float(refused.headers.get("Retry-After", "1")))
                raise
            if user is None or not ok:
                self.throttle.failed(username, client_ip)
                raise unauthorized("wrong username or password")
            self.throttle.succeeded(username)
        finally:
            self.throttle.release(username, client_ip)
        return Principal(user.id, user.username, user.role)

    async def register(self, username: str, password: str, role: str = "trader") -> Principal:
        if role not in ROLES:
            raise ApiError(Code.INVALID_REQUEST, "role must be trader or admin")
        hashed = await self.hashing.hash(password)
        user = await self.store.call(repo.create_user, username, hashed, role)
        return Principal(user.id, user.username, user.role)

    # ---- API keys ------------------------------------------------------------------------------

    async def create_api_key(
        self,
        principal: Principal,
        label: str | None,
        *,
        expires_at: datetime | None = None,
        scopes: Sequence[str] | None = None,
        account_id: str | None = None,
    ) -> tuple[ApiKey, str]:
        """A new key (the row and the secret, shown once). The caller has checked that `account_id` is
        one of the user's accounts; here: known scopes incl. `read`, a future expiry, and no more power
        than the credentials asking (a read key cannot mint a trade key, a bound key an unbound one)."""
        wanted = list(dict.fromkeys(DEFAULT_SCOPES if scopes is None else scopes))
        unknown = [scope for scope in wanted if scope not in ALL_SCOPES]
        if unknown or not wanted:
            raise ApiError(Code.INVALID_REQUEST, f"scopes must be among read, trade; got {wanted}")
        if Scope.READ not in wanted:
            raise ApiError(Code.INVALID_REQUEST, "every key has the 'read' scope: add it to scopes")
        if expires_at is not None and expires_at.timestamp() <= self.clock():
            raise ApiError(Code.INVALID_REQUEST, "expires_at must be in the future")
        for scope in wanted:
            if scope not in principal.scopes:
                raise forbidden(f"this API key lacks the '{scope}' scope, so it cannot give it to a new key")
        if principal.account_id is not None and account_id != principal.account_id:
            raise forbidden(
                f"this API key is bound to account {principal.account_id}: a key it creates must be too"
            )
        key = new_api_key()
        row = await self.store.call(
            repo.create_api_key,
            principal.user_id,
            hash_api_key(key),
            label,
            expires_at=expires_at,
            scopes=[Scope(scope).value for scope in wanted],
            account_id=account_id,
        )
        return row, key

    async def list_api_keys(self, principal: Principal) -> list[tuple[ApiKey, datetime | None]]:
        """The user's keys, oldest first, each with its last use: the latest this process saw, or
        the stored one (which trails by at most `LAST_USED_WRITE_SECONDS`)."""
        rows = await self.store.call(repo.list_api_keys, principal.user_id)
        keys = []
        for row in rows:
            last = row.last_used_at
            seen = self._used.get(row.id)
            if seen is not None and (last is None or seen > last.timestamp()):
                last = datetime.fromtimestamp(seen, UTC)
            keys.append((row, last))
        return keys

    async def delete_api_key(self, principal: Principal, key_id: str) -> None:
        keys = await self.store.call(repo.list_api_keys, principal.user_id)
        if not any(key.id == key_id for key in keys):
            exists = await self.store.call(_api_key_exists, key_id)
            if exists:
                raise forbidden("this API key belongs to another user")
            raise ApiError(Code.NOT_FOUND, f"API key {key_id} not found")
        await self.store.call(repo.delete_api_key, key_id, user_id=principal.user_id)
        self.forget_key(principal.user_id, key_id)
        if self.broadcast_revocation is not None:
            await self.broadcast_revocation(principal.user_id, key_id)

    def forget_key(self, user_id: str, key_id: str | None) -> None:
        """A key deleted (here or, with `serve --workers N`, in another gateway): it stops working at
        once and its WebSockets close."""
        for digest, cached in list(self._keys.items()):
            if cached.principal.key_id == key_id or (key_id is None and cached.principal.user_id == user_id):
                del self._keys[digest]
        if key_id is not None:
            self._used.pop(key_id, None)
            self._unwritten.pop(key_id, None)
        self.notify_revoked(user_id, key_id)

    def forget_all_keys(self) -> None:
        """Every cached key is read again from the store on its next use (a revocation was missed)."""
        self._keys.clear()

    def notify_revoked(self, user_id: str, key_id: str | None = None) -> None:
        """Tell the listeners (the WebSocket hub) a credential is gone: `key_id` None = the whole user."""
        for listener in list(self.revocation_listeners):
            listener(user_id, key_id)

    async def from_api_key(self, key: str) -> Principal:
        digest = hash_api_key(key)
        cached = self._keys.get(digest)
        if cached is None:
            loaded = await self.store.call(_api_key_principal, digest)
            if loaded is None:
                raise unauthorized("invalid API key")
            cached = self._keys[digest] = _CachedKey(*loaded)
        principal = cached.principal
        now = self.clock()
        if principal.expires_at is not None and now >= principal.expires_at:
            raise unauthorized("API key expired")
        key_id = principal.key_id
        assert key_id is not None
        self._used[key_id] = now
        stored = cached.stored_use
        if stored is None or now - stored >= LAST_USED_WRITE_SECONDS:
            cached.stored_use = now
            self._unwritten[key_id] = now
            if self._flush_task is None:
                self._flush_task = asyncio.get_running_loop().create_task(self._flush_last_used())
        return principal

    async def _flush_last_used(self) -> None:
        """Store the pending last uses, one transaction for all of them; off the request path."""
        try:
            while self._unwritten:
                batch, self._unwritten = self._unwritten, {}
                used = {key_id: datetime.fromtimestamp(at, UTC) for key_id, at in batch.items()}
                try:
                    await self.store.call(repo.touch_api_keys, used)
                except Exception as error:  # a lost last-use time must not break authentication
                    log.warning("api_key_last_used_not_stored", keys=len(used), error=repr(error))
        finally:
            self._flush_task = None

    async def flush_last_used(self) -> None:
        """Wait until every last use seen so far is stored (at shutdown; tests)."""
        task = self._flush_task
        if task is not None:
            await asyncio.shield(task)
        if self._unwritten:
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_last_used())
            await self._flush_task

    async def authenticate(self, authorization: str | None, api_key: str | None) -> Principal:
        if api_key:
            return await self.from_api_key(api_key)
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthorized("use 'Authorization: Bearer <token>' or 'X-API-Key: <key>'")
            return self.decode_token(token.strip())
        raise unauthorized()


class _CachedKey:
    """A known key: who it authenticates, and the last use stored or being stored (epoch seconds)."""

    __slots__ = ("principal", "stored_use")

    def __init__(self, principal: Principal, stored_use: float | None) -> None:
        self.principal = principal
        self.stored_use = stored_use


def _api_key_exists(session: Any, key_id: str) -> bool:
    return repo.get_api_key(session, key_id) is not None


def _api_key_principal(session: Any, digest: str) -> tuple[Principal, float | None] | None:
    """The key's principal and its stored last use; None for an unknown key (or a deleted user)."""
    key = repo.find_api_key_by_hash(session, digest)
    if key is None:
        return None
    user = repo.get_user(session, key.user_id)
    if user is None:
        return None
    principal = Principal(
        user.id,
        user.username,
        user.role,
        key.id,
        scopes=frozenset(scope for scope in key.scopes.split(",") if scope),
        account_id=key.account_id,
        expires_at=key.expires_at.timestamp() if key.expires_at is not None else None,
    )
    return principal, key.last_used_at.timestamp() if key.last_used_at is not None else None
