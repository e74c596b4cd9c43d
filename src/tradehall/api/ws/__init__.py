"""The WebSocket `/ws`: a hub of connections, fan-out of engine and bus events, and order entry.

Modules: `hub` (the registry of connections and channels, subscriptions, credentials, a socket's
life), its mixins `fanout` (with `private`, the private channels' REST objects), `bus_source` and
`protocol`, and the standalone `connection` (one socket's state and bounded outbound queue),
`snapshots` (built once per version, shared) and `expiry` (token expiry on open sockets).
"""

from tradehall.api.ws.connection import CLOSE_POLICY, CLOSE_SLOW_CONSUMER, PRIVATE_CHANNELS, Connection
from tradehall.api.ws.hub import WebSocketHub, router

__all__ = ["CLOSE_POLICY", "CLOSE_SLOW_CONSUMER", "PRIVATE_CHANNELS", "Connection", "WebSocketHub", "router"]
