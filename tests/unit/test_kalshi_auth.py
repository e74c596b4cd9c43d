"""Kalshi request signing: RSA-PSS-SHA256 (salt = digest length) of timestamp + METHOD + path, the
three headers, key loading from PEM text or a file, and a fake Kalshi WebSocket that refuses a
handshake whose signature does not verify."""

from __future__ import annotations

import asyncio
import base64
import random
import time
from collections.abc import AsyncIterator
from http import HTTPStatus
from pathlib import Path

import httpx
import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from pydantic import ValidationError
from websockets.asyncio.server import ServerConnection, serve
from websockets.http11 import Request, Response

from tests.fakes.http_server import FakeHttpServer
from tests.fakes.providers import FakeKalshi
from tests.fakes.ws import FakeWsServer, eventually
from tradehall.marketdata.breaker import Backoff
from tradehall.marketdata.config import Endpoints, MarketDataConfig, build_runtime
from tradehall.marketdata.kalshi import KalshiFeed
from tradehall.marketdata.kalshi_auth import (
    KEY_HEADER,
    SIGNATURE_HEADER,
    TIMESTAMP_HEADER,
    WS_PATH,
    KalshiSigner,
    signed_message,
    verify_headers,
)
from tradehall.marketdata.models import FeedEvent, Quote

KEY_ID = "a952bcbe-ec3b-4b5b-b8f9-11dae589608c"
NOW_MS = 1_703_123_456_789
TICKER = "FED-23DEC-T3.00"


@pytest.fixture(scope="module")
def private_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def pem(private_key: rsa.RSAPrivateKey) -> bytes:
    return private_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def test_headers_are_key_id_timestamp_in_ms_and_a_pss_signature_of_timestamp_method_path(
    private_key: rsa.RSAPrivateKey, pem: bytes
) -> None:
    signer = KalshiSigner(KEY_ID, pem)
    headers = signer.headers("get", "/trade-api/v2/portfolio/balance?limit=5", now_ms=NOW_MS)
    assert list(headers) == [KEY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER]
    assert (KEY_HEADER, TIMESTAMP_HEADER, SIGNATURE_HEADER) == (
        "KALSHI-ACCESS-KEY",
        "KALSHI-ACCESS-TIMESTAMP",
        "KALSHI-ACCESS-SIGNATURE",
    )
    assert headers[KEY_HEADER] == KEY_ID
    assert headers[TIMESTAMP_HEADER] == "1703123456789"
    signature = base64.b64decode(headers[SIGNATURE_HEADER], validate=True)
    assert len(signature) == 256  # one RSA-2048 block
    message = b"1703123456789GET/trade-api/v2/portfolio/balance"  # upper-case method, no query string
    assert signed_message(NOW_MS, "get", "/trade-api/v2/portfolio/balance?limit=5") == message
    # Kalshi's parameters: MGF1-SHA256, salt as long as the digest (32 bytes)
    salt_32 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)
    private_key.public_key().verify(signature, message, salt_32, hashes.SHA256())
    # a verifier that insists on another salt length refuses it: the salt length is part of the scheme
    salt_64 = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=64)
    with pytest.raises(InvalidSignature):
        private_key.public_key().verify(signature, message, salt_64, hashes.SHA256())
    with pytest.raises(InvalidSignature):
        private_key.public_key().verify(signature, message + b"x", salt_32, hashes.SHA256())


def test_signatures_are_randomised_but_all_verify(pem: bytes, private_key: rsa.RSAPrivateKey) -> None:
    signer = KalshiSigner(KEY_ID, pem)
    first = signer.headers("GET", WS_PATH, now_ms=NOW_MS)
    second = signer.headers("GET", WS_PATH, now_ms=NOW_MS)
    assert first[SIGNATURE_HEADER] != second[SIGNATURE_HEADER]  # PSS salts are random
    public = private_key.public_key()
    assert verify_headers(public, first, "GET", WS_PATH)
    assert verify_headers(public, second, "GET", WS_PATH)
    assert not verify_headers(public, first, "POST", WS_PATH)
    assert not verify_headers(public, first, "GET", "/trade-api/v2/markets")
    assert not verify_headers(public, {**first, TIMESTAMP_HEADER: str(NOW_MS + 1)}, "GET", WS_PATH)
    assert not verify_headers(public, {**first, SIGNATURE_HEADER: "not base64!"}, "GET", WS_PATH)
    assert not verify_headers(public, {TIMESTAMP_HEADER: str(NOW_MS)}, "GET", WS_PATH)
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048).public_key()
    assert not verify_headers(other, first, "GET", WS_PATH)


def test_calling_the_signer_signs_the_websocket_handshake_with_its_clock(
    pem: bytes, private_key: rsa.RSAPrivateKey
) -> None:
    ticks = iter([NOW_MS, NOW_MS + 1500])
    signer = KalshiSigner(KEY_ID, pem, clock_ms=lambda: next(ticks))
    first, second = signer(), signer()
    assert (first[TIMESTAMP_HEADER], second[TIMESTAMP_HEADER]) == ("1703123456789", "1703123458289")
    assert verify_headers(private_key.public_key(), first, "GET", "/trade-api/ws/v2")
    assert verify_headers(private_key.public_key(), second, "GET", "/trade-api/ws/v2")


def test_the_wall_clock_timestamp_is_milliseconds(pem: bytes) -> None:
    before = time.time_ns() // 1_000_000
    stamp = int(KalshiSigner(KEY_ID, pem)()[TIMESTAMP_HEADER])
    assert before <= stamp <= time.time_ns() // 1_000_000


def test_key_loads_from_pem_text_or_file_and_pkcs1(
    tmp_path: Path, pem: bytes, private_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "kalshi.pem"
    pkcs1 = private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    assert pkcs1.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    path.write_bytes(pkcs1)
    public = private_key.public_key()
    for signer in (
        KalshiSigner.load(KEY_ID, path=path),
        KalshiSigner.load(KEY_ID, path=str(path)),
        KalshiSigner.load(KEY_ID, pem=pem.decode()),
        KalshiSigner.load(KEY_ID, pem=pem, ws_url="wss://api.elections.kalshi.com/trade-api/ws/v2"),
    ):
        assert signer.ws_path == WS_PATH
        assert verify_headers(public, signer.headers("GET", WS_PATH, NOW_MS), "GET", WS_PATH)
    assert KalshiSigner.load(KEY_ID, pem=pem, ws_url="ws://127.0.0.1:9/custom/ws").ws_path == "/custom/ws"
    assert KalshiSigner.load(KEY_ID, pem=pem, ws_url="ws://127.0.0.1:9").ws_path == "/"


def test_bad_keys_are_refused_with_a_clear_error(tmp_path: Path, pem: bytes) -> None:
    with pytest.raises(ValueError, match="not a readable PEM key"):
        KalshiSigner(KEY_ID, "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----\n")
    ec_pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with pytest.raises(ValueError, match="must be RSA, got"):
        KalshiSigner(KEY_ID, ec_pem)
    with pytest.raises(ValueError, match="key id is empty"):
        KalshiSigner("", pem)
    with pytest.raises(ValueError, match="exactly one"):
        KalshiSigner.load(KEY_ID)
    with pytest.raises(ValueError, match="exactly one"):
        KalshiSigner.load(KEY_ID, pem=pem, path=tmp_path / "k.pem")


def test_config_builds_the_signer_from_a_key_file(
    tmp_path: Path, pem: bytes, private_key: rsa.RSAPrivateKey
) -> None:
    path = tmp_path / "kalshi.pem"
    path.write_bytes(pem)
    config = MarketDataConfig.model_validate(
        {
            "kalshi_tickers": [TICKER],
            "kalshi_key_id": KEY_ID,
            "kalshi_private_key_path": str(path),
            "endpoints": {"kalshi_ws_url": "ws://127.0.0.1:1/trade-api/ws/v2"},
        }
    )
    signer = config.kalshi_signer(clock_ms=lambda: NOW_MS)
    assert signer is not None
    headers = signer()
    assert headers[KEY_HEADER] == KEY_ID and headers[TIMESTAMP_HEADER] == str(NOW_MS)
    assert verify_headers(private_key.public_key(), headers, "GET", WS_PATH)
    assert MarketDataConfig().kalshi_signer() is None
    with pytest.raises(ValidationError, match="needs one of"):
        MarketDataConfig(kalshi_key_id=KEY_ID)
    with pytest.raises(ValidationError, match="needs kalshi_key_id"):
        MarketDataConfig(kalshi_private_key_pem=pem.decode())
    with pytest.raises(ValidationError, match="needs one of"):
        MarketDataConfig(
            kalshi_key_id=KEY_ID, kalshi_private_key_pem=pem.decode(), kalshi_private_key_path=path
        )


# ---- a fake Kalshi WebSocket that checks the signature -------------------------------------------


class SignatureCheckingWs(FakeWsServer):
    """Refuses (401) a handshake without a valid, fresh (±5 s) signature of GET + the request path."""

    def __init__(self, public_key: rsa.RSAPublicKey) -> None:
        super().__init__()
        self.public_key = public_key
        self.refused = 0
        self.accepted_headers: list[dict[str, str]] = []

    async def start(self) -> SignatureCheckingWs:
        self._server = await serve(self._handle, "127.0.0.1", 0, process_request=self._check)
        self.port = next(iter(self._server.sockets)).getsockname()[1]
        return self

    def _check(self, connection: ServerConnection, request: Request) -> Response | None:
        stamp = request.headers.get(TIMESTAMP_HEADER, "")
        fresh = stamp.isdigit() and abs(int(stamp) - time.time_ns() // 1_000_000) <= 5000
        if not fresh or not verify_headers(self.public_key, request.headers, "GET", request.path):
            self.refused += 1
            return connection.respond(HTTPStatus.UNAUTHORIZED, "invalid signature\n")
        self.accepted_headers.append({k: request.headers[k] for k in (KEY_HEADER, TIMESTAMP_HEADER)})
        return None


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=1.0) as client:
        yield client


async def _kalshi(public_key: rsa.RSAPublicKey) -> tuple[FakeKalshi, SignatureCheckingWs, FakeHttpServer]:
    ws, rest = SignatureCheckingWs(public_key), FakeHttpServer()
    await ws.start()
    await rest.start()
    return FakeKalshi(rest, ws, TICKER), ws, rest


async def test_fake_kalshi_accepts_the_signed_handshake_and_streams_quotes(
    private_key: rsa.RSAPrivateKey, pem: bytes, http: httpx.AsyncClient
) -> None:
    fake, ws, rest = await _kalshi(private_key.public_key())
    seen: list[FeedEvent] = []
    feed = KalshiFeed(
        [TICKER],
        seen.append,
        http,
        ws_url=f"{ws.url}{WS_PATH}",
        rest_root=fake.rest_root,
        status_interval=30.0,
        auth_headers=KalshiSigner(KEY_ID, pem),
    )
    feed.start()
    try:
        await eventually(lambda: any(isinstance(e, Quote) and e.source == "kalshi" for e in seen))
        assert ws.refused == 0
        assert ws.paths == [WS_PATH]
        assert ws.accepted_headers[0][KEY_HEADER] == KEY_ID
        assert fake.subscribes == 1
        quote = next(e for e in seen if isinstance(e, Quote))
        assert (str(quote.bid), str(quote.ask)) == ("0.2200", "0.4400")  # YES ask = 1 - best NO bid 0.56
    finally:
        await feed.stop()
        await ws.stop()
        await rest.stop()


async def test_fake_kalshi_refuses_a_handshake_signed_by_another_key(
    private_key: rsa.RSAPrivateKey, http: httpx.AsyncClient
) -> None:
    fake, ws, rest = await _kalshi(private_key.public_key())
    impostor = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    feed = KalshiFeed(
        [TICKER],
        lambda _: None,
        http,
        ws_url=f"{ws.url}{WS_PATH}",
        rest_root=fake.rest_root,
        status_interval=30.0,
        poll_interval=0.05,
        backoff=Backoff(base=0.05, cap=0.1, rng=random.Random(3)),
        auth_headers=KalshiSigner(KEY_ID, impostor),
    )
    feed.start()
    try:
        # the server counts a refusal before the client has recorded it: wait for both sides
        await eventually(lambda: ws.refused >= 2 and feed.errors_by_kind.get("connection", 0) >= 2)
        assert ws.connects == 0 and fake.subscribes == 0
    finally:
        await feed.stop()
        await ws.stop()
        await rest.stop()


async def test_runtime_signs_kalshi_from_the_config(
    private_key: rsa.RSAPrivateKey, pem: bytes, http: httpx.AsyncClient
) -> None:
    fake, ws, rest = await _kalshi(private_key.public_key())
    config = MarketDataConfig.model_validate(
        {
            "kalshi_tickers": [TICKER],
            "kalshi_key_id": KEY_ID,
            "kalshi_private_key_pem": pem.decode(),
            "kalshi_status_interval": 30.0,
            "endpoints": Endpoints(kalshi_ws_url=f"{ws.url}{WS_PATH}", kalshi_rest_root=fake.rest_root),
        }
    )
    runtime = build_runtime(config, lambda _: None, http=http)
    await runtime.start()
    try:
        await eventually(lambda: fake.subscribes == 1)
        assert ws.refused == 0 and ws.accepted_headers[0][KEY_HEADER] == KEY_ID
    finally:
        await runtime.stop()
        await ws.stop()
        await rest.stop()
    await asyncio.sleep(0)
