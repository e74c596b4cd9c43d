"""Authentication and authorisation: argon2 passwords, HS256 JWTs with expiry, hashed API keys, roles.

API keys are 32 random bytes, so a fast hash (SHA-256) is enough to store them: a brute force of the
hash is as hard as guessing the key. Passwords are low-entropy, hence argon2. Known keys are cached
in process; deleting a key drops it from the cache in the same request, so it stops working at once.
Hashing runs in its own bounded pool (`api.passwords`) and logins are throttled before any hashing
(`api.login_throttle`): failed logins cannot starve the engine nor be guessed at full speed.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jwt

from tradehall.api.errors import ApiError, forbidden, unauthorized
from tradehall.api.login_throttle import LoginThrottle
from tradehall.api.passwords import HashingPool
from tradehall.api.passwords import hash_password as hash_password
from tradehall.api.passwords import verify_password as verify_password
from tradehall.domain.errors import Code
from tradehall.service.settings import Settings
from tradehall.store import Store
from tradehall.store import repositories as repo

API_KEY_PREFIX = "th_"
JWT_ALGORITHM = "HS256"
ROLES = ("trader", "admin")


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

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    @property
    def limiter_key(self) -> str:
        # one bucket per user, whatever key or token: more keys must not mean more requests
        return f"user:{self.user_id}"


# ---- revocation listeners (open WebSockets) ------------------------------------------------------

RevocationListener = Callable[[str, str | None], None]
"""Called with (user_id, key_id) when an API key is deleted, (user_id, None) when a user is disabled:
a credential checked once at a socket's start must stop working there too, at once."""


class Authenticator:
    def __init__(self, settings: Settings, store: Store) -> None:
        self.secret = settings.jwt_secret
        self.expiry_seconds = settings.jwt_expiry_seconds
        self.store = store
        self._keys: dict[str, Principal] = {}
        self._tokens: dict[str, tuple[Principal, float]] = {}
        self.revocation_listeners: list[RevocationListener] = []
        self.hashing = HashingPool(settings.password_hash_workers, settings.password_hash_queue)
        self.throttle = LoginThrottle()

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
        password counts as a failure, and a success clears the username's count."""
        self.throttle.check(username, client_ip)
        user = await self.store.call(repo.find_user_by_username, username)
        ok = await self.hashing.verify(user.password_hash if user is not None else None, password)
        if user is None or not ok:
            self.throttle.failed(username, client_ip)
            raise unauthorized("wrong username or password")
        self.throttle.succeeded(username)
        return Principal(user.id, user.username, user.role)

    async def register(self, username: str, password: str, role: str = "trader") -> Principal:
        if role not in ROLES:
            raise ApiError(Code.INVALID_REQUEST, "role must be trader or admin")
        hashed = await self.hashing.hash(password)
        user = await self.store.call(repo.create_user, username, hashed, role)
        return Principal(user.id, user.username, user.role)

    # ---- API keys ------------------------------------------------------------------------------

    async def create_api_key(self, principal: Principal, label: str | None) -> tuple[str, str]:
        key = new_api_key()
        row = await self.store.call(repo.create_api_key, principal.user_id, hash_api_key(key), label)
        return row.id, key

    async def delete_api_key(self, principal: Principal, key_id: str) -> None:
        keys = await self.store.call(repo.list_api_keys, principal.user_id)
        if not any(key.id == key_id for key in keys):
            exists = await self.store.call(_api_key_exists, key_id)
            if exists:
                raise forbidden("this API key belongs to another user")
            raise ApiError(Code.NOT_FOUND, f"API key {key_id} not found")
        await self.store.call(repo.delete_api_key, key_id, user_id=principal.user_id)
        for digest, cached in list(self._keys.items()):
            if cached.key_id == key_id:
                del self._keys[digest]
        self.notify_revoked(principal.user_id, key_id)

    def notify_revoked(self, user_id: str, key_id: str | None = None) -> None:
        """Tell the listeners (the WebSocket hub) a credential is gone: `key_id` None = the whole user."""
        for listener in list(self.revocation_listeners):
            listener(user_id, key_id)

    async def from_api_key(self, key: str) -> Principal:
        digest = hash_api_key(key)
        cached = self._keys.get(digest)
        if cached is not None:
            return cached
        row = await self.store.call(_api_key_principal, digest)
        if row is None:
            raise unauthorized("invalid API key")
        self._keys[digest] = row
        return row

    async def authenticate(self, authorization: str | None, api_key: str | None) -> Principal:
        if api_key:
            return await self.from_api_key(api_key)
        if authorization:
            scheme, _, token = authorization.partition(" ")
            if scheme.lower() != "bearer" or not token.strip():
                raise unauthorized("use 'Authorization: Bearer <token>' or 'X-API-Key: <key>'")
            return self.decode_token(token.strip())
        raise unauthorized()


def _api_key_exists(session: Any, key_id: str) -> bool:
    from tradehall.store.models import ApiKey

    return session.get(ApiKey, key_id) is not None


def _api_key_principal(session: Any, digest: str) -> Principal | None:
    key = repo.find_api_key_by_hash(session, digest)
    if key is None:
        return None
    user = repo.get_user(session, key.user_id)
    if user is None:
        return None
    return Principal(user.id, user.username, user.role, key.id)
