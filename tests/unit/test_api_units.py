"""Units of the gateway: the error table, the token bucket, tokens and key hashing, the slow-consumer rule,
the order view built from engine events."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal
from typing import Any

import jwt
import pytest

from tradehall.api import convert
from tradehall.api.auth import (
    Authenticator,
    Principal,
    hash_api_key,
    hash_password,
    new_api_key,
    verify_password,
)
from tradehall.api.errors import STATUS_OF, ApiError
from tradehall.api.ratelimit import TokenBucketLimiter
from tradehall.api.ws import CLOSE_SLOW_CONSUMER, Connection
from tradehall.domain.commands import CreateMarket, Deposit, OpenAccount, PlaceOrder
from tradehall.domain.enums import MarketKind, OrderSide
from tradehall.domain.errors import Code
from tradehall.domain.market import MarketSpec
from tradehall.engine import Engine, views
from tradehall.service.settings import Settings


def test_every_code_has_the_status_of_the_contract() -> None:
    assert {code.value: status for code, status in STATUS_OF.items()} == {
        "invalid_request": 400,
        "unauthorized": 401,
        "forbidden": 403,
        "not_found": 404,
        "conflict": 409,
        "invalid_order": 422,
        "insufficient_balance": 422,
        "risk_limit_exceeded": 422,
        "drawdown_violation": 422,
        "daily_loss_limit": 422,
        "position_limit_exceeded": 422,
        "market_closed": 409,
        "account_not_active": 409,
        "rate_limited": 429,
        "payload_too_large": 413,
        "unsupported_media_type": 415,
        "overloaded": 503,
        "market_data_unavailable": 503,
        "internal": 500,
    }


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_refuses_with_retry_after() -> None:
    clock = FakeClock()
    limiter = TokenBucketLimiter(rate=2.0, burst=3, clock=clock)
    assert [limiter.take("u") for _ in range(3)] == [0.0, 0.0, 0.0]
    assert limiter.take("u") == pytest.approx(0.5)
    with pytest.raises(ApiError) as refused:
        limiter.check("u")
    assert refused.value.code is Code.RATE_LIMITED
    assert refused.value.headers["Retry-After"] == "1"
    assert limiter.take("someone-else") == 0.0
    clock.now += 0.5
    assert limiter.take("u") == 0.0


def test_a_zero_rate_disables_the_limiter() -> None:
    limiter = TokenBucketLimiter(rate=0, burst=1)
    assert all(limiter.take("u") == 0.0 for _ in range(100))


def test_passwords_are_argon2_and_api_keys_are_stored_as_sha256() -> None:
    hashed = hash_password("s3cret")
    assert hashed.startswith("$argon2")
    assert verify_password(hashed, "s3cret")
    assert not verify_password(hashed, "wrong")
    key = new_api_key()
    assert key.startswith("th_") and len(key) > 40
    assert hash_api_key(key) != key and len(hash_api_key(key)) == 64


def test_tokens_expire_and_must_carry_the_right_signature() -> None:
    settings = Settings(jwt_secret="x" * 40, jwt_expiry_seconds=60)
    auth = Authenticator(settings, store=None)  # type: ignore[arg-type]
    principal = Principal("user-1", "ann", "trader")
    token, expires = auth.issue_token(principal)
    assert expires == 60
    assert auth.decode_token(token) == principal
    old, _ = auth.issue_token(principal, now=time.time() - 120)
    with pytest.raises(ApiError, match="token expired"):
        auth.decode_token(old)
    forged = jwt.encode({"sub": "user-1", "role": "admin", "exp": int(time.time()) + 60}, "y" * 40)
    with pytest.raises(ApiError, match="invalid token"):
        auth.decode_token(forged)
    bad_role = jwt.encode({"sub": "user-1", "role": "root", "exp": int(time.time()) + 60}, "x" * 40)
    with pytest.raises(ApiError):
        auth.decode_token(bad_role)


class FakeSocket:
    pass


async def test_a_full_send_queue_marks_the_connection_for_a_slow_consumer_close() -> None:
    connection = Connection(FakeSocket(), max_queue=2)  # type: ignore[arg-type]
    connection.push("a")
    connection.push("b")
    assert not connection.closing
    connection.push("c")
    assert connection.closing
    assert connection.close_code == CLOSE_SLOW_CONSUMER == 1013
    drained: list[Any] = []
    while not connection.queue.empty():
        drained.append(connection.queue.get_nowait())
    assert drained[-1] is None  # the writer's stop signal
    connection.push("d")
    assert connection.queue.empty()
    await asyncio.sleep(0)


def binary_engine() -> Engine:
    engine = Engine()
    spec = MarketSpec(
        symbol="RAIN",
        kind=MarketKind.BINARY,
        base="RAIN",
        quote="USD",
        tick_size=Decimal("0.01"),
        lot_size=Decimal("1"),
    )
    engine.apply(CreateMarket(spec=spec, ts=1))
    for account in ("a", "b"):
        engine.apply(OpenAccount(account_id=account, owner=account, ts=1))
        engine.apply(Deposit(account_id=account, amount=Decimal("1000"), ts=1))
    return engine


def test_order_view_from_events_shows_a_no_order_at_its_no_price_with_fills() -> None:
    engine = binary_engine()
    spec = engine.markets["RAIN"].spec
    engine.apply(
        PlaceOrder(
            account_id="a",
            market="RAIN",
            side=OrderSide.YES,
            quantity=Decimal(10),
            price=Decimal("0.60"),
            ts=2_000_000_000,
        )
    )
    events = engine.apply(
        PlaceOrder(
            account_id="b",
            market="RAIN",
            side=OrderSide.NO,
            quantity=Decimal(4),
            price=Decimal("0.40"),
            ts=3_000_000_000,
        )
    )
    order = convert.order_from_events(events, 2, spec, 2)
    assert order is not None
    assert order["side"] == "no"
    assert order["price"] == "0.4"
    assert order["average_price"] == "0.4"
    assert order["status"] == "filled"
    assert order["filled_quantity"] == "4"
    assert [f["quantity"] for f in order["fills"]] == ["4"]
    assert order["created_at"] == "1970-01-01T00:00:03Z"
    position = views.position(engine, "b", "RAIN")
    assert position is not None
    view = convert.position_dict(position)
    assert (view["side"], view["quantity"], view["average_entry_price"]) == ("no", "4", "0.4")


def test_rfc3339_of_nanoseconds_keeps_microseconds() -> None:
    assert convert.rfc3339_ns(1_700_000_000_123_456_789) == "2023-11-14T22:13:20.123456Z"


def test_cli_ladder_applies_sequenced_deltas_and_detects_a_gap() -> None:
    from tradehall.cli.api_cmd import Ladder

    ladder = Ladder("BTC-USD")
    snapshot = {"bids": [["100", "1"], ["99", "2"]], "asks": [["101", "3"]]}
    assert ladder.apply({"type": "snapshot", "sequence": 7, "data": snapshot})
    assert ladder.apply(
        {"type": "update", "sequence": 8, "data": {"bids": [["100", "0"]], "asks": [["102", "1"]]}}
    )
    assert (ladder.bids, ladder.asks, ladder.sequence) == ({"99": "2"}, {"101": "3", "102": "1"}, 8)
    assert not ladder.apply({"type": "update", "sequence": 10, "data": {"bids": [], "asks": []}})
    assert ladder.sequence == 8
