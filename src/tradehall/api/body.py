"""The one gate every request body passes, before any route (the order fast path included) sees it.

`RequestBody` (ASGI middleware) reads a declared body whole, up to `max_bytes`, and refuses:
- a body over the limit, by Content-Length or as it streams (chunked): 413 `payload_too_large`,
  answered here, so no handler can swallow the condition and turn it into a 500;
- a non-empty body whose Content-Type is not `application/json`: 415 `unsupported_media_type`
  (a body-less POST such as `/admin/markets/{s}/halt` needs no content type);
- a JSON body with a duplicate object key anywhere: 400 `invalid_request` (parsers keep one of the
  values silently, so a proxy or a log and the engine could read different orders).
Then it hands the app the same body. Malformed JSON passes on: the route answers it as before.

Duplicate keys, cheaply: orjson parses (C) and keeps one value per key, so every duplicate drops at
least the key string from the parsed value. Re-serialising it with orjson (C) and counting the
delimiting quotes of both texts (escape pairs removed by one C regex) compares the number of strings:
equal exactly when no key repeats. Measured on a 220-byte order (best of 15, loaded 2-core box):
orjson's parse alone 4.7 µs, this check 8.9 µs, stdlib `json` with an `object_pairs_hook` 22.9 µs.
Where orjson refuses valid JSON (a number beyond a double, nesting deeper than its encoder takes)
the stdlib hook decides.
"""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tradehall.api.errors import problem_response
from tradehall.domain.errors import Code

_ESCAPE = re.compile(rb"\\.", re.DOTALL)


class DuplicateKeyError(ValueError):
    pass


def _delimiting_quotes(text: bytes) -> int:
    """The quotes that open or close a JSON string (an escaped quote is inside one)."""
    if b"\\" in text:
        text = _ESCAPE.sub(b"", text)
    return text.count(b'"')


def _refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKeyError(key)
            seen.add(key)
    return result


def has_duplicate_keys(body: bytes) -> bool:
    """True when some JSON object of `body` repeats a key; False too for text that is not JSON."""
    try:
        again = orjson.dumps(orjson.loads(body))
    except (orjson.JSONDecodeError, orjson.JSONEncodeError):  # beyond a double, or nested past 254
        return _has_duplicates_slow(body)
    return _delimiting_quotes(body) != _delimiting_quotes(again)


def _has_duplicates_slow(body: bytes) -> bool:
    try:
        json.loads(body, object_pairs_hook=_refuse_duplicates)
    except DuplicateKeyError:
        return True
    except (ValueError, RecursionError):
        return False  # not JSON: the route's parser answers it
    return False


def is_json_media_type(value: bytes) -> bool:
    """`application/json`, with parameters (`; charset=utf-8`) or not, in any letter case."""
    media_type = value.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json"


class RequestBody:
    """ASGI middleware: the body checks above, answered as problem+json with the correlation id."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = False
        content_type: bytes | None = None
        for name, value in scope.get("headers", ()):
            if name == b"content-length":
                if not value.isdigit():  # bytes.isdigit: ASCII digits only
                    await self._refuse(scope, send, Code.INVALID_REQUEST, "Content-Length is not a number")
                    return
                length = int(value)
                if self.max_bytes > 0 and length > self.max_bytes:
                    await self._refuse(scope, send, Code.PAYLOAD_TOO_LARGE, self._too_large())
                    return
                declared = declared or length > 0
            elif name == b"transfer-encoding":
                declared = True
            elif name == b"content-type":
                content_type = value
        if not declared:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client left before sending it all
                return
            chunk = message.get("body", b"")
            received += len(chunk)
            if self.max_bytes > 0 and received > self.max_bytes:
                await self._refuse(scope, send, Code.PAYLOAD_TOO_LARGE, self._too_large())
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        if body:
            if content_type is None or not is_json_media_type(content_type):
                detail = "a request body must be JSON with Content-Type: application/json"
                await self._refuse(scope, send, Code.UNSUPPORTED_MEDIA_TYPE, detail)
                return
            if has_duplicate_keys(body):
                await self._refuse(scope, send, Code.INVALID_REQUEST, "duplicate key in a JSON object")
                return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"request body larger than {self.max_bytes} bytes"

    async def _refuse(self, scope: Scope, send: Send, code: Code, detail: str) -> None:
        correlation_id = str(scope.get("state", {}).get("correlation_id", ""))
        # the rest of a refused body is never read: the connection cannot carry another request
        headers = {"Connection": "close"} if code is Code.PAYLOAD_TOO_LARGE else None
        response = problem_response(code, detail, correlation_id, headers=headers)

        async def nothing() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, nothing, send)
