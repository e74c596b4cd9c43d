"""`/docs` (Swagger UI) and `/redoc` served without a CDN, and an OpenAPI document to authenticate with.

A self-hosted server may have no internet: FastAPI's own pages load their JavaScript and CSS from a
CDN and stay blank there. The assets come from the `fastapi-offline` package (it ships Swagger UI and
ReDoc builds) and are served by the app under `/static-docs/`; we do not use its `FastAPIOffline`
factory, which builds a plain `FastAPI`, not our `TradehallApp`.

The document is completed once after FastAPI builds it: both security schemes (a JWT as
`Authorization: Bearer`, or `X-API-Key`), named as alternatives on every operation that needs a
caller, so Swagger UI's Authorize button sends them; and each request body's examples (kept on the
request models in `schemas.py`) also on its media type, where Swagger UI offers them to pick from.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

from tradehall.api.gateway import current_principal

DESCRIPTION = """A self-hostable trading engine: REST and WebSocket (`/ws`) API.

**Authenticate** with either scheme (the *Authorize* button):
`bearerAuth`, the `access_token` of `POST /auth/token` (a JWT, sent as `Authorization: Bearer <token>`),
or `apiKeyAuth`, a key made by `POST /auth/api-keys` (sent as `X-API-Key: <key>`).
Market data, `/health`, `/ready` and `/metrics` are public; `/admin/...` needs the admin role.

Amounts, prices and quantities are decimal strings. Every error is `application/problem+json` with a
stable `code` and the request's `correlation_id` (also the `X-Request-ID` response header)."""

STATIC_URL = "/static-docs"
ASSETS = Path(fastapi_offline.__file__).parent / "static"
"""swagger-ui-bundle.js, swagger-ui.css, redoc.standalone.js, favicon.png"""

BEARER = "bearerAuth"
API_KEY = "apiKeyAuth"
SECURITY_SCHEMES: dict[str, dict[str, Any]] = {
    BEARER: {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "The `access_token` of `POST /auth/token`, sent as `Authorization: Bearer <token>`.",
    },
    API_KEY: {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A key from `POST /auth/api-keys` (its `api_key`), sent as `X-API-Key: <key>`.",
    },
}
EITHER_SCHEME: list[dict[str, list[str]]] = [{BEARER: []}, {API_KEY: []}]
"""Two entries: either one authenticates (one entry naming both would demand both)."""

SWAGGER_PARAMETERS: dict[str, Any] = {
    "persistAuthorization": True,  # a reload keeps the token or key the user entered
    "validatorUrl": None,  # Swagger UI would otherwise ask validator.swagger.io about the document
}


def install_docs(app: FastAPI, routers: Sequence[APIRouter]) -> None:
    """Serve `/docs`, `/redoc` and their assets from `app`; complete `app`'s OpenAPI document.

    `app` is built with `docs_url=None, redoc_url=None` so FastAPI's CDN pages are not registered.
    `routers` are those `app` includes (without a prefix): their routes tell which operations need a
    caller (FastAPI's own list of the app's routes is nested differently from one release to another).
    """
    routes = [route for router in routers for route in router.routes if isinstance(route, APIRoute)]
    app.mount(STATIC_URL, StaticFiles(directory=ASSETS), name="static-docs")
    title = app.title
    openapi_url = app.openapi_url or "/openapi.json"

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_swagger_ui_html(
            openapi_url=root + openapi_url,
            title=f"{title} - Swagger UI",
            swagger_js_url=f"{root}{STATIC_URL}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{STATIC_URL}/swagger-ui.css",
            swagger_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )

    async def redoc(request: Request) -> HTMLResponse:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return get_redoc_html(
            openapi_url=root + openapi_url,
            title=f"{title} - ReDoc",
            redoc_js_url=f"{root}{STATIC_URL}/redoc.standalone.js",
            redoc_favicon_url=f"{root}{STATIC_URL}/favicon.png",
            with_google_fonts=False,
        )

    app.add_api_route("/docs", swagger_ui, methods=["GET"], include_in_schema=False)
    app.add_api_route("/redoc", redoc, methods=["GET"], include_in_schema=False)
    app.openapi = _completed(app.openapi, routes)  # type: ignore[method-assign]


def _completed(build: Callable[[], dict[str, Any]], routes: list[APIRoute]) -> Callable[[], dict[str, Any]]:
    """FastAPI's `openapi()` (cached by FastAPI until the routes change), completed once per build."""

    def openapi() -> dict[str, Any]:
        document = build()
        if "securitySchemes" not in document.get("components", {}):  # a new build
            complete(document, routes)
        return document

    return openapi


def complete(document: dict[str, Any], routes: list[APIRoute]) -> None:
    """Add the security schemes, each authenticated operation's `security`, and media-type examples."""
    document.setdefault("components", {})["securitySchemes"] = SECURITY_SCHEMES
    schemas: dict[str, Any] = document["components"].get("schemas", {})
    paths: dict[str, Any] = document.get("paths", {})
    for route in routes:
        if not route.include_in_schema:
            continue
        operations = paths.get(route.path_format, {})
        for method in route.methods or ():
            operation = operations.get(method.lower())
            if operation is None:
                continue
            if needs_caller(route.dependant):
                operation["security"] = EITHER_SCHEME
            body = operation.get("requestBody")
            if body is not None:
                for media in body.get("content", {}).values():
                    _media_examples(media, schemas)


def needs_caller(dependant: Dependant) -> bool:
    """Whether a route authenticates its caller: `current_principal` anywhere among its dependencies."""
    return any(dep.call is current_principal or needs_caller(dep) for dep in dependant.dependencies)


def _media_examples(media: dict[str, Any], schemas: dict[str, Any]) -> None:
    if "example" in media or "examples" in media:
        return
    values = [value for name in _refs(media.get("schema", {})) for value in schemas[name].get("examples", ())]
    if values:
        media["examples"] = {
            f"example{i + 1}": {"summary": _summary(value, i), "value": value}
            for i, value in enumerate(values)
        }


def _refs(schema: dict[str, Any]) -> Iterator[str]:
    """The component names a body schema points at (`ApiKeyCreate | None` is an anyOf with null)."""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        yield ref.rsplit("/", 1)[-1]
    for option in schema.get("anyOf", ()):
        yield from _refs(option)


_NAMING_FIELDS = ("label", "kind", "venue", "type", "side", "outcome", "role", "symbol", "market", "currency")


def _summary(value: Any, index: int) -> str:
    """A short name for an example in Swagger UI's list: its distinguishing values (`limit buy`)."""
    if isinstance(value, dict):
        words = [str(value[key]) for key in _NAMING_FIELDS if isinstance(value.get(key), str)]
        if words:
            return " ".join(words)
        if 0 < len(value) <= 3:
            return ", ".join(value)  # the fields it sets: `stop_price`, `price, bid, ask`
    return f"example {index + 1}"
