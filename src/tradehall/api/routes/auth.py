"""Users, tokens and API keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from tradehall.api.convert import rfc3339
from tradehall.api.errors import ApiError, forbidden, not_found
from tradehall.api.gateway import AdminDep, Gateway, GatewayDep, PrincipalDep, TraderDep
from tradehall.api.routes.common import ERRORS, Limit, json_response, page, time_ns
from tradehall.api.schemas import (
    AdminUserCreate,
    ApiKeyCreate,
    ApiKeyOut,
    ApiKeysPage,
    Credentials,
    TokenOut,
    UserOut,
    UsersPage,
)
from tradehall.domain.errors import Code
from tradehall.engine import views
from tradehall.store import repositories as repo
from tradehall.store.models import ApiKey

router = APIRouter(tags=["auth"], responses=ERRORS)


def _client_ip(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _client_key(request: Request) -> str:
    return f"ip:{_client_ip(request)}"


@router.post(
    "/auth/register",
    status_code=201,
    response_model=UserOut,
    summary="Register a user",
    description="Creates a trader with this username and password; then log in with `POST /auth/token`. "
    "409 `conflict` if the username is taken; 403 `forbidden` when registration is switched off "
    "(`TRADEHALL_ALLOW_REGISTRATION`: an admin creates users instead).",
)
async def register(body: Credentials, request: Request, gateway: GatewayDep) -> Response:
    if not gateway.settings.allow_registration:
        raise ApiError(Code.FORBIDDEN, "registration is disabled; an admin creates users")
    gateway.limiter.check(_client_key(request))
    principal = await gateway.auth.register(body.username, body.password)
    return json_response(
        {"user_id": principal.user_id, "username": principal.username, "role": principal.role}, 201
    )


@router.post(
    "/auth/token",
    response_model=TokenOut,
    summary="Log in: get a bearer token",
    description="Exchanges a username and password for a JWT (`access_token`, valid `expires_in` seconds). "
    "Send it as `Authorization: Bearer <token>` (in these docs: *Authorize*, `bearerAuth`). Wrong "
    "credentials are 401; repeated failures for a username or from one address are slowed down "
    "with 429 `rate_limited` and `Retry-After`.",
)
async def token(body: Credentials, request: Request, gateway: GatewayDep) -> Response:
    gateway.limiter.check(_client_key(request))
    principal = await gateway.auth.login(body.username, body.password, _client_ip(request))
    access, expires = gateway.auth.issue_token(principal)
    return json_response({"access_token": access, "token_type": "bearer", "expires_in": expires})


def _key_dict(row: ApiKey, last_used_at: datetime | None) -> dict[str, Any]:
    """A key as the API shows it: never its secret nor the secret's hash."""
    return {
        "key_id": row.id,
        "label": row.label,
        "created_at": rfc3339(row.created_at),
        "last_used_at": rfc3339(last_used_at) if last_used_at is not None else None,
        "expires_at": rfc3339(row.expires_at) if row.expires_at is not None else None,
        "scopes": [scope for scope in row.scopes.split(",") if scope],
        "account_id": row.account_id,
    }


def _own_account(gateway: Gateway, user_id: str, account_id: str) -> None:
    """A key binds only to the caller's own account (even an admin's: a key acts as its user)."""
    owner = views.account_owner(gateway.engine, account_id)
    if owner is None or owner == "system":
        raise not_found(f"account {account_id} not found")
    if owner != user_id:
        raise forbidden(f"account {account_id} belongs to another user")


@router.post("/auth/api-keys", status_code=201, response_model=ApiKeyOut, summary="Create an API key")
async def create_api_key(
    principal: PrincipalDep, gateway: GatewayDep, body: ApiKeyCreate | None = None
) -> Response:
    """A new API key; its secret `api_key` is in this answer only (the server keeps a hash).

    `scopes` default to `["read", "trade"]`; `expires_at` must lie ahead; `account_id` binds the key
    to one of the caller's accounts. A key cannot create a key with more scopes than its own, nor an
    unbound one (or one bound elsewhere) when it is bound."""
    body = body or ApiKeyCreate()
    expires_at = None
    if time_ns(body.expires_at, "expires_at") is not None:  # RFC 3339 with a zone, else 400
        assert body.expires_at is not None
        expires_at = datetime.fromisoformat(body.expires_at).astimezone(UTC)
    if body.account_id is not None:
        _own_account(gateway, principal.user_id, body.account_id)
    row, key = await gateway.auth.create_api_key(
        principal, body.label, expires_at=expires_at, scopes=body.scopes, account_id=body.account_id
    )
    created = _key_dict(row, None)
    del created["last_used_at"]
    return json_response({**created, "api_key": key}, 201)


@router.get("/auth/api-keys", response_model=ApiKeysPage, summary="List your API keys")
async def list_api_keys(
    principal: PrincipalDep,
    gateway: GatewayDep,
    limit: Limit = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """The caller's keys, newest first, without their secrets. `last_used_at` is recorded at most
    once a minute per key."""
    keys = list(reversed(await gateway.auth.list_api_keys(principal)))
    start = 0
    if cursor is not None:
        ids = [row.id for row, _ in keys]
        if cursor not in ids:
            raise ApiError(
                Code.INVALID_REQUEST, "cursor is not valid; use the next_cursor of a previous page"
            )
        start = ids.index(cursor) + 1
    chunk = keys[start : start + limit]
    next_cursor = chunk[-1][0].id if start + limit < len(keys) else None
    return json_response(page([_key_dict(row, last) for row, last in chunk], next_cursor))


@router.delete(
    "/auth/api-keys/{key_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an API key",
    description="The key stops working at once, also on open WebSocket connections (their private "
    "subscriptions end). 404 if the caller has no key with this id.",
)
async def delete_api_key(key_id: str, principal: TraderDep, gateway: GatewayDep) -> Response:
    # a read-only key must not be able to lock its owner out by deleting the other keys
    await gateway.auth.delete_api_key(principal, key_id)
    return Response(status_code=204)


@router.get(
    "/auth/me",
    response_model=UserOut,
    summary="Who am I",
    description="The authenticated caller's user id, username and role: a quick check of a token or key.",
)
async def me(principal: PrincipalDep) -> Response:
    return json_response(
        {"user_id": principal.user_id, "username": principal.username, "role": principal.role}
    )


@router.post(
    "/admin/users",
    status_code=201,
    response_model=UserOut,
    summary="Create a user (admin)",
    description="Creates a `trader` or another `admin`, also while self-registration is switched off. "
    "409 `conflict` if the username is taken.",
)
async def admin_create_user(body: AdminUserCreate, _admin: AdminDep, gateway: GatewayDep) -> Response:
    principal = await gateway.auth.register(body.username, body.password, body.role)
    return json_response(
        {"user_id": principal.user_id, "username": principal.username, "role": principal.role}, 201
    )


@router.get(
    "/admin/users",
    response_model=UsersPage,
    summary="List users (admin)",
    description="Every user, oldest first: `{user_id, username, role, created_at}` (never a password "
    "hash). Query `limit` (1-1000, default 100) and `cursor` (the `next_cursor` of the previous page; "
    "400 `invalid_request` if it names no user). 403 `forbidden` for a trader.",
)
async def admin_list_users(
    _admin: AdminDep,
    gateway: GatewayDep,
    limit: Limit = 100,
    cursor: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    rows = await gateway.service.store.call(repo.list_users, limit + 1, cursor)
    if rows is None:
        raise ApiError(Code.INVALID_REQUEST, "cursor is not valid; use the next_cursor of a previous page")
    chunk = rows[:limit]
    items = [
        {"user_id": row.id, "username": row.username, "role": row.role, "created_at": rfc3339(row.created_at)}
        for row in chunk
    ]
    return json_response(page(items, chunk[-1].id if len(rows) > limit else None))
