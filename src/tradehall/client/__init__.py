"""The typed Python SDK: sync `Client`, async `AsyncClient` and the WebSocket `Stream`."""

from tradehall.client.api import ApiError, AsyncClient, Call, Client, Stream, ws_url

__all__ = ["ApiError", "AsyncClient", "Call", "Client", "Stream", "ws_url"]
