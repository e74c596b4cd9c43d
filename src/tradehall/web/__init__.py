"""The web dashboard: a small single-page app the server itself serves at `/`.

Nothing is built with Node and nothing comes from a CDN: `static/` holds vanilla ES modules, a
stylesheet and the vendored `lightweight-charts` build (with its licence), all served by tradehall under
`/ui/`. The page talks to the same REST API and `/ws` as any client; why a single page and not
server-rendered templates is in docs/web.md.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles

from tradehall.web.shell import render_shell

STATIC = Path(__file__).parent / "static"
ASSETS_URL = "/ui"

__all__ = ["ASSETS_URL", "STATIC", "install_web"]


def install_web(app: FastAPI) -> None:
    """Serve the dashboard at `/` and its assets under `/ui/` from `app`."""
    app.mount(ASSETS_URL, StaticFiles(directory=STATIC), name="web")

    async def index(request: Request) -> Response:
        root = str(request.scope.get("root_path", "")).rstrip("/")
        return HTMLResponse(render_shell(root + ASSETS_URL), headers=SECURITY_HEADERS)

    app.add_api_route("/", index, methods=["GET"], include_in_schema=False)


SECURITY_HEADERS = {
    # the page loads nothing from another origin: the browser enforces what the tests check
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "connect-src 'self'; font-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}
