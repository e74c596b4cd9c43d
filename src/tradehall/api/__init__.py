"""The HTTP and WebSocket API (FastAPI): `create_app(settings)`."""

from tradehall.api.app import create_app

__all__ = ["create_app"]
