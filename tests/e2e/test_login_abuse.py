"""Failed logins against a real server: throttled per username and per IP before any hashing, hashed
in a bounded pool (503 `overloaded` when full) that order entry and the journal never wait for."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher

from tests.e2e.test_api_harness import Server, create_demo_markets, running_server
from tradehall.api.gateway import Gateway
from tradehall.api.passwords import HASH_THREAD
from tradehall.service.runner import JOURNAL_IO_THREAD


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


# argon2 with small parameters: what is under test is when hashing happens, not its cost
CHEAP_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    with running_server(tmp_path, fsync="batch") as running:
        running.app.state.gateway.auth.hashing.hasher = CHEAP_HASHER
        yield running


def gateway_of(server: Server) -> Gateway:
    gateway: Gateway = server.app.state.gateway
    return gateway


def register(server: Server, username: str, password: str) -> None:
    response = httpx.post(f"{server.url}/auth/register", json={"username": username, "password": password})
    assert response.status_code == 201, response.text


def login(server: Server, username: str, password: str) -> httpx.Response:
    return httpx.post(
        f"{server.url}/auth/token", json={"username": username, "password": password}, timeout=60
    )


def counting_hashes(gateway: Gateway) -> Callable[[], int]:
    count = 0
    lock = threading.Lock()

    def hook() -> None:
        nonlocal count
        with lock:
            count += 1

    gateway.auth.hashing.before_hash = hook

    def hashes() -> int:
        with lock:
            return count

    return hashes


def assert_throttled(response: httpx.Response, retry_after: int) -> None:
    assert response.status_code == 429, response.text
    assert response.json()["code"] == "rate_limited"
    assert response.headers["retry-after"] == str(retry_after)


def test_five_failures_then_waits_of_1_2_4_up_to_30_seconds_and_a_success_resets(server: Server) -> None:
    gateway = gateway_of(server)
    clock = ManualClock()
    gateway.auth.throttle.clock = clock
    register(server, "carol", "right-password")
    hashes = counting_hashes(gateway)

    for _ in range(5):
        assert login(server, "carol", "wrong").status_code == 401
    assert hashes() == 5
    assert_throttled(login(server, "carol", "wrong"), 1)
    assert_throttled(login(server, "carol", "right-password"), 1)  # even the right one waits
    assert_throttled(login(server, "CAROL", "wrong"), 1)  # one count whatever the case
    assert hashes() == 5  # a refused attempt costs no hashing
    clock.advance(0.5)
    assert_throttled(login(server, "carol", "wrong"), 1)  # Retry-After is whole seconds, rounded up
    clock.advance(0.5)
    for expected in (2, 4, 8, 16, 30, 30):
        assert login(server, "carol", "wrong").status_code == 401  # allowed once its wait is over
        assert_throttled(login(server, "carol", "wrong"), expected)
        clock.advance(expected)
    assert hashes() == 11

    assert login(server, "carol", "right-password").status_code == 200
    for _ in range(5):  # the success cleared the username's failures
        assert login(server, "carol", "wrong").status_code == 401
    assert_throttled(login(server, "carol", "wrong"), 1)


def test_failures_older_than_fifteen_minutes_no_longer_count(server: Server) -> None:
    gateway = gateway_of(server)
    clock = ManualClock()
    gateway.auth.throttle.clock = clock
    register(server, "dave", "right-password")
    for _ in range(4):
        assert login(server, "dave", "wrong").status_code == 401
    clock.advance(15 * 60)
    assert login(server, "dave", "wrong").status_code == 401  # 1 failure in the window, not 5
    for _ in range(4):
        assert login(server, "dave", "wrong").status_code == 401
    assert_throttled(login(server, "dave", "wrong"), 1)


def test_twenty_failures_from_one_ip_throttle_every_username_from_it(server: Server) -> None:
    gateway = gateway_of(server)
    clock = ManualClock()
    gateway.auth.throttle.clock = clock
    register(server, "erin", "right-password")
    for n in range(20):  # 20 usernames, none near its own limit of 5
        assert login(server, f"nobody-{n}", "guess").status_code == 401
    assert_throttled(login(server, "someone-else", "guess"), 1)
    assert_throttled(login(server, "erin", "right-password"), 1)
    clock.advance(1)
    assert login(server, "someone-else", "guess").status_code == 401
    assert_throttled(login(server, "erin", "right-password"), 2)
    clock.advance(2)
    assert login(server, "erin", "right-password").status_code == 200
    # a success clears its username's count, not the IP's: the next failure from it waits 4 s
    assert login(server, "someone-else", "guess").status_code == 401
    assert_throttled(login(server, "erin", "right-password"), 4)


def test_thirty_concurrent_logins_fill_the_bounded_pool_503_while_orders_and_fsyncs_go_on(
    server: Server,
) -> None:
    gateway = gateway_of(server)
    pool = gateway.auth.hashing
    assert pool.capacity == 10  # 2 threads + 8 waiting (the defaults)
    create_demo_markets(server.admin())
    trader, account_id = server.trader()

    sync_threads: list[str] = []
    journal = gateway.service.runner.journal
    real_sync = journal.sync

    def recording_sync() -> None:
        sync_threads.append(threading.current_thread().name)
        real_sync()

    journal.sync = recording_sync  # type: ignore[method-assign]
    hash_threads: list[str] = []
    gate = threading.Event()

    def held() -> None:
        hash_threads.append(threading.current_thread().name)
        gate.wait(60)

    pool.before_hash = held
    attempts: list[Future[httpx.Response]] = []
    with ThreadPoolExecutor(max_workers=30) as senders:
        try:
            attempts = [senders.submit(login, server, f"victim-{n}", "wrong") for n in range(30)]
            deadline = time.monotonic() + 30
            while sum(attempt.done() for attempt in attempts) < 20:
                assert time.monotonic() < deadline, "the refused logins did not answer at once"
                time.sleep(0.01)
            assert pool.in_flight == 10
            refused = [attempt.result() for attempt in attempts if attempt.done()]
            assert [response.status_code for response in refused] == [503] * 20
            assert {response.json()["code"] for response in refused} == {"overloaded"}
            assert {response.headers["retry-after"] for response in refused} == {"1"}

            # hashing is stuck and its queue full: order entry does not notice
            sync_threads.clear()
            order = trader.place_order(account_id, "BTC-USD", "buy", "0.01", "1000")
            assert order["status"] == "open"
            assert sync_threads and all(name.startswith(JOURNAL_IO_THREAD) for name in sync_threads)
            assert len(hash_threads) == 2  # only the pool's threads ever started a hash
            assert all(name.startswith(HASH_THREAD) for name in hash_threads)
        finally:
            gate.set()
        answered = [attempt.result() for attempt in attempts]
    assert sorted(response.status_code for response in answered) == [401] * 10 + [503] * 20
    assert pool.in_flight == 0


def test_a_503_overloaded_attempt_is_not_counted_as_a_failure(server: Server) -> None:
    gateway = gateway_of(server)
    clock = ManualClock()
    gateway.auth.throttle.clock = clock
    pool = gateway.auth.hashing
    gate = threading.Event()
    pool.before_hash = lambda: gate.wait(60)
    with ThreadPoolExecutor(max_workers=10) as senders:
        try:
            blocked = [senders.submit(login, server, f"filler-{n}", "x") for n in range(10)]
            deadline = time.monotonic() + 30
            while pool.in_flight < 10:
                assert time.monotonic() < deadline
                time.sleep(0.01)
            for _ in range(5):
                assert login(server, "frank", "wrong").status_code == 503
        finally:
            gate.set()
        assert [attempt.result().status_code for attempt in blocked] == [401] * 10
    pool.before_hash = None
    for _ in range(5):
        assert login(server, "frank", "wrong").status_code == 401
    assert_throttled(login(server, "frank", "wrong"), 1)


def test_register_and_admin_user_creation_hash_in_the_pool(server: Server) -> None:
    gateway = gateway_of(server)
    hashes = counting_hashes(gateway)
    register(server, "grace-" + uuid.uuid4().hex[:6], "pw-1")
    admin = server.admin()
    admin.create_user("heidi-" + uuid.uuid4().hex[:6], "pw-2", "trader")
    assert hashes() == 3  # the admin's login, the registration, the admin's creation of a user
