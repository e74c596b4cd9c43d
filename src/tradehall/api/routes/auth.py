"""Users, tokens and API keys."""

from __future__ import annotations

from fastapi import APIRouter, Request
from starlette.responses import Response

from tradehall.api.errors import ApiError
from tradehall.api.gateway import AdminDep, GatewayDep, PrincipalDep
from tradehall.api.routes.common import ERRORS, json_response
from tradehall.api.schemas import AdminUserCreate, ApiKeyCreate, ApiKeyOut, Credentials, TokenOut, UserOut
from tradehall.domain.errors import Code

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


@router.post("/auth/api-keys", status_code=201, response_model=ApiKeyOut, summary="Create an API key")
async def create_api_key(
    principal: PrincipalDep, gateway: GatewayDep, body: ApiKeyCreate | None = None
) -> Response:
    """A new API key; its secret `api_key` is in this answer only (the server keeps a hash)."""
    key_id, key = await gateway.auth.create_api_key(principal, body.label if body else None)
    return json_response({"key_id": key_id, "api_key": key}, 201)


@router.delete(
    "/auth/api-keys/{key_id}",
    status_code=204,
    response_class=Response,
    summary="Delete an API key",
    description="The key stops working at once, also on open WebSocket connections (their private "
    "subscriptions end). 404 if the caller has no key with this id.",
)
async def delete_api_key(key_id: str, principal: PrincipalDep, gateway: GatewayDep) -> Response:
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
