"""LoginThrottle on its own: the waits, the window, and bounded memory; the tarpit of refused logins."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tradehall.api.auth import Authenticator
from tradehall.api.errors import ApiError
from tradehall.api.login_throttle import LoginThrottle, Tarpit
from tradehall.service.settings import Settings
from tradehall.store import Store


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


async def test_the_tarpit_holds_up_to_its_cap_and_only_a_bounded_number_at_once() -> None:
    slept: list[float] = []
    release = asyncio.Event()

    async def recorded_sleep(seconds: float) -> None:
        slept.append(seconds)
        await release.wait()

    tarpit = Tarpit(max_seconds=2.0, max_held=2)
    tarpit.sleep = recorded_sleep
    first = asyncio.ensure_future(tarpit.hold(30.0))
    second = asyncio.ensure_future(tarpit.hold(0.5))
    await asyncio.sleep(0)
    assert (tarpit.held, slept) == (2, [2.0, 0.5])  # capped at 2 s; a shorter wait as it is
    assert await tarpit.hold(5.0) == 0.0  # a third while two are held: answered at once
    release.set()
    assert await asyncio.gather(first, second) == [2.0, 0.5]
    assert tarpit.held == 0
    assert await Tarpit(max_seconds=0.0).hold(5.0) == 0.0  # switched off


async def test_a_throttled_login_is_answered_after_the_pause_with_what_is_left(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, login_tarpit_seconds=1.5)
    store = Store.from_url(f"sqlite:///{tmp_path / 'unused.db'}")  # a throttled login reads nothing
    try:
        auth = Authenticator(settings, store)
        clock = Clock()
        auth.throttle.clock = clock
        for _ in range(5):
            auth.throttle.failed("u", "10.0.0.1")
        clock.now += 0.5  # 5 failures: the next attempt waits 1 s after the last; 0.5 s are left
        held: list[float] = []
        original = auth.tarpit.hold

        async def watched(seconds: float) -> float:
            held.append(seconds)
            return await original(seconds)

        auth.tarpit.hold = watched  # type: ignore[method-assign]
        with pytest.raises(ApiError) as info:
            await auth.login("u", "pw", "10.0.0.1")
        assert held == [0.5]
        assert (info.value.status, info.value.headers) == (429, {"Retry-After": "1"})
    finally:
        store.close()


def test_attempts_in_flight_are_bounded_by_the_failures_left_and_one_past_the_threshold() -> None:
    clock = Clock()
    throttle = LoginThrottle(clock=clock)
    admitted = [throttle.admit("u", "10.0.0.1") for _ in range(7)]
    assert admitted == [0.0] * 5 + [1.0, 1.0]  # 5 failures left for "u": 5 may be checked at once
    for _ in range(5):
        throttle.failed("u", "10.0.0.1")
        throttle.release("u", "10.0.0.1")
    clock.now += 1.0  # the first wait after the threshold has passed
    assert throttle.admit("u", "10.0.0.1") == 0.0
    assert throttle.admit("u", "10.0.0.1") == 1.0  # past the threshold: one at a time
    throttle.release("u", "10.0.0.1")
    assert throttle.admit("u", "10.0.0.1") == 0.0
    throttle.release("u", "10.0.0.1")
    assert throttle.admit("other", "10.0.0.9") == 0.0  # other keys are not held up
