"""A tiny asyncio HTTP/1.1 server: routes by path, queued one-shot faults, and a request log.

Small on purpose (no framework): faults such as a dropped connection or a response that never comes
need control of the socket that a framework would hide.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import orjson


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    at: float
    body: bytes = b""


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    """Seconds before answering (a timeout when longer than the client's)."""
    drop: bool = False
    """Close the connection without answering."""
    hold: asyncio.Event | None = None
    """Answer only once this is set: a response that never comes within any client timeout."""

    @staticmethod
    def json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
        return Response(
            status, orjson.dumps(payload), {"content-type": "application/json", **(headers or {})}
        )

    @staticmethod
    def html(text: str = "<!DOCTYPE html><html><body>Error</body></html>", status: int = 200) -> Response:
        return Response(status, text.encode(), {"content-type": "text/html"})


Handler = Callable[[Request], Response]

REASONS = {
    200: "OK",
    401: "Unauthorized",
    404: "Not Found",
    418: "I'm a teapot",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}


class FakeHttpServer:
    def __init__(self) -> None:
        self.routes: dict[str, Handler] = {}
        self.faults: dict[str, deque[Response]] = {}
        self.requests: list[Request] = []
        self._server: asyncio.Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def route(self, path: str, handler: Handler) -> None:
        self.routes[path] = handler

    def inject(self, path: str, *responses: Response) -> None:
        """Answer the next requests to `path` with `responses`, in order, before the handler again."""
        self.faults.setdefault(path, deque()).extend(responses)

    def hits(self, path: str) -> list[Request]:
        return [request for request in self.requests if request.path == path]

    async def start(self) -> FakeHttpServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    if ":" in line:
                        name, value = line.split(":", 1)
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                body = await reader.readexactly(length) if length else b""
                parts = urlsplit(target)
                request = Request(
                    method, parts.path, dict(parse_qsl(parts.query)), headers, time.monotonic(), body
                )
                self.requests.append(request)
                queued = self.faults.get(parts.path)
                if queued:
                    response = queued.popleft()
                elif parts.path in self.routes:
                    response = self.routes[parts.path](request)
                else:
                    response = Response.json({"error": "not found"}, 404)
                if response.delay:
                    await asyncio.sleep(response.delay)
                if response.hold is not None:
                    await response.hold.wait()
                if response.drop:
                    writer.transport.abort()
                    return
                reason = REASONS.get(response.status, "Status")
                out = [f"HTTP/1.1 {response.status} {reason}", f"content-length: {len(response.body)}"]
                out += [f"{name}: {value}" for name, value in response.headers.items()]
                writer.write(("\r\n".join(out) + "\r\n\r\n").encode("latin-1") + response.body)
                await writer.drain()
        except (
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
            asyncio.CancelledError,
        ):
            pass  # the client went away, or the server is shutting down
        finally:
            with contextlib.suppress(Exception):
                writer.close()
