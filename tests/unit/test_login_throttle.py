"""LoginThrottle on its own: the waits, the window, and bounded memory."""

from __future__ import annotations

import pytest

from tradehall.api.errors import ApiError
from tradehall.api.login_throttle import LoginThrottle


class Clock:
    def __init__(self) -> None:
        self.now = 50_000.0

    def __call__(self) -> float:
        return self.now


def test_waits_double_from_one_second_up_to_thirty_after_the_threshold() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    waits = []
    for _ in range(12):
        waits.append(throttle.wait_seconds("u", "10.0.0.1"))
        throttle.failed("u", "10.0.0.1")
    waits.append(throttle.wait_seconds("u", "10.0.0.1"))
    assert waits == [0.0] * 5 + [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0, 30.0]
    with pytest.raises(ApiError) as info:
        throttle.check("U", "10.0.0.2")
    assert info.value.status == 429
    assert info.value.headers == {"Retry-After": "30"}


def test_kept_failures_per_key_are_bounded_without_changing_the_wait() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    for _ in range(1000):
        clock.now += 0.5
        throttle.failed("u", "10.0.0.1")
    last = clock.now
    assert sorted(len(failures) for failures in throttle._failures.values()) == [5 + 6, 20 + 6]
    assert throttle.wait_seconds("u", "10.0.0.2") == 30.0
    clock.now = last + 15 * 60 - 3.25  # 7 failures of the last 15 minutes are left
    throttle.failed("u", "10.0.0.2")
    assert throttle.wait_seconds("u", "10.0.0.2") == 8.0  # the 8th: 2 ** (8 - 5)


def test_tracked_keys_are_bounded_and_swept_after_the_window() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, max_keys=100)
    for n in range(500):
        throttle.failed(f"user-{n}", "10.0.0.1")
    assert len(throttle) <= 100
    assert throttle.wait_seconds("user-499", "10.0.0.2") == 0.0  # 1 failure < 5
    clock.now += 15 * 60 + 61
    throttle.failed("late", "10.0.0.3")  # a sweep runs: everything older than the window goes
    assert len(throttle) == 2  # user:late and ip:10.0.0.3


def test_a_success_clears_the_username_but_not_the_ip() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock, ip_threshold=3)
    for _ in range(3):
        throttle.failed("u", "10.0.0.1")
    throttle.succeeded("U")
    assert throttle.wait_seconds("u", "10.0.0.2") == 0.0
    assert throttle.wait_seconds("v", "10.0.0.1") == 1.0
