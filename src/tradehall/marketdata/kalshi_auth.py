"""Kalshi API-key request signing: RSA-PSS over SHA-256 of `timestamp + METHOD + path`.

Kalshi authenticates every WebSocket handshake (and private REST call) with three headers:
`KALSHI-ACCESS-KEY` (the key id), `KALSHI-ACCESS-TIMESTAMP` (ms since the epoch, as text) and
`KALSHI-ACCESS-SIGNATURE`, the base64 RSA-PSS signature of the timestamp, the upper-case method and
the URL path without its query string. The salt is as long as the digest (32 bytes) with MGF1-SHA256:
what Kalshi's own SDKs use (`RSA_PSS_SALTLEN_DIGEST`, `padding.PSS.DIGEST_LENGTH`).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

KEY_HEADER = "KALSHI-ACCESS-KEY"
TIMESTAMP_HEADER = "KALSHI-ACCESS-TIMESTAMP"
SIGNATURE_HEADER = "KALSHI-ACCESS-SIGNATURE"
WS_PATH = "/trade-api/ws/v2"

MsClock = Callable[[], int]


def _wall_ms() -> int:
    return time.time_ns() // 1_000_000


def pss_padding() -> padding.PSS:
    """Kalshi's PSS parameters (also what a verifier must use)."""
    return padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=padding.PSS.DIGEST_LENGTH)


def signed_message(timestamp_ms: int, method: str, path: str) -> bytes:
    """The bytes Kalshi expects signed; the query string is not part of the signed path."""
    return f"{timestamp_ms}{method.upper()}{path.split('?', 1)[0]}".encode()


def load_private_key(pem: str | bytes, password: bytes | None = None) -> rsa.RSAPrivateKey:
    """An RSA private key from PEM text (PKCS#1 `RSA PRIVATE KEY` or PKCS#8 `PRIVATE KEY`)."""
    data = pem.encode() if isinstance(pem, str) else pem
    try:
        key = serialization.load_pem_private_key(data, password=password)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"Kalshi private key is not a readable PEM key: {exc}") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError(f"Kalshi private key must be RSA, got {type(key).__name__}")
    return key


class KalshiSigner:
    """Signs Kalshi requests with one API key; `signer()` gives the WebSocket handshake headers,
    so the signer itself is a `KalshiFeed(auth_headers=...)` callable (fresh timestamp per connect)."""

    def __init__(
        self,
        key_id: str,
        private_key_pem: str | bytes,
        *,
        ws_path: str = WS_PATH,
        clock_ms: MsClock | None = None,
        password: bytes | None = None,
    ) -> None:
        if not key_id:
            raise ValueError("Kalshi key id is empty")
        self.key_id = key_id
        self.ws_path = ws_path or "/"
        self._key = load_private_key(private_key_pem, password)
        self._clock_ms = clock_ms or _wall_ms

    @classmethod
    def load(
        cls,
        key_id: str,
        *,
        pem: str | bytes | None = None,
        path: Path | str | None = None,
        ws_url: str | None = None,
        clock_ms: MsClock | None = None,
    ) -> KalshiSigner:
        """From PEM text or a PEM file (exactly one); `ws_url`'s path is what the handshake signs."""
        if pem is not None and path is None:
            data = pem
        elif path is not None and pem is None:
            data = Path(path).read_bytes()
        else:
            raise ValueError("give the Kalshi private key as PEM text or as a file path (exactly one)")
        ws_path = WS_PATH if ws_url is None else urlsplit(ws_url).path or "/"
        return cls(key_id, data, ws_path=ws_path, clock_ms=clock_ms)

    @property
    def public_key(self) -> rsa.RSAPublicKey:
        return self._key.public_key()

    def sign(self, message: bytes) -> str:
        signature = self._key.sign(message, pss_padding(), hashes.SHA256())
        return base64.b64encode(signature).decode("ascii")

    def headers(self, method: str, path: str, now_ms: int | None = None) -> dict[str, str]:
        """The three headers for `method path` at `now_ms` (the clock's time when None)."""
        timestamp = self._clock_ms() if now_ms is None else now_ms
        return {
            KEY_HEADER: self.key_id,
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: self.sign(signed_message(timestamp, method, path)),
        }

    def __call__(self) -> dict[str, str]:
        """The WebSocket handshake's headers: `GET` of the WebSocket path, now."""
        return self.headers("GET", self.ws_path)


def verify_headers(public_key: rsa.RSAPublicKey, headers: Mapping[str, str], method: str, path: str) -> bool:
    """True when `headers` carry a valid Kalshi signature of `method path` (what a fake server checks).

    `headers` is any string mapping: a dict, `websockets`' or httpx's case-insensitive headers.
    """
    timestamp, signature = headers.get(TIMESTAMP_HEADER), headers.get(SIGNATURE_HEADER)
    if not headers.get(KEY_HEADER) or not timestamp or not signature or not timestamp.isdigit():
        return False
    try:
        raw = base64.b64decode(signature, validate=True)
        public_key.verify(raw, signed_message(int(timestamp), method, path), pss_padding(), hashes.SHA256())
    except (InvalidSignature, ValueError):
        return False
    return True


__all__ = [
    "KEY_HEADER",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "WS_PATH",
    "KalshiSigner",
    "load_private_key",
    "pss_padding",
    "signed_message",
    "verify_headers",
]
