"""The WebSocket `/ws` (the package's modules say more)."""

from tradehall.api.ws.hub import CLOSE_POLICY, CLOSE_SLOW_CONSUMER, PRIVATE_CHANNELS, Connection, WebSocketHub, router

__all__ = ["CLOSE_POLICY", "CLOSE_SLOW_CONSUMER", "PRIVATE_CHANNELS", "Connection", "WebSocketHub", "router"]
