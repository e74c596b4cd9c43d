"""Password hashing in a small pool of its own, with a bounded queue.

argon2 is deliberately slow (tens of milliseconds of CPU and 64 MiB per hash). Run in the loop's
default executor, a burst of wrong-password logins queued ahead of everything else that uses it.
Here it has `workers` threads and at most `queue` more waiting; beyond that a login, registration
or user creation is refused at once with 503 `overloaded` and `Retry-After`, costing nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from tradehall.api.errors import ApiError
from tradehall.domain.errors import Code

P = ParamSpec("P")
T = TypeVar("T")

HASH_THREAD = "password-hash"
OVERLOADED_RETRY_AFTER_SECONDS = 1

_hasher = PasswordHasher()


def password_hasher(memory_kib: int, time_cost: int) -> PasswordHasher:
    """argon2 with the settings' costs for new hashes (the defaults are argon2-cffi's: 64 MiB, 3 passes).
    Tests use small ones: a hash costs them a millisecond, not a time slice the machine may not give."""
    if (memory_kib, time_cost) == (_hasher.memory_cost, _hasher.time_cost):
        return _hasher
    return PasswordHasher(time_cost=time_cost, memory_cost=memory_kib)


def hash_password(password: str, hasher: PasswordHasher = _hasher) -> str:
    return hasher.hash(password)


def verify_password(password_hash: str, password: str, hasher: PasswordHasher = _hasher) -> bool:
    try:
        return hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


HASH_THREAD_NICENESS = 19


def _yield_to_the_loop() -> None:
    """Lowers the hashing thread's scheduling priority (Linux threads have their own nice value): a
    hash takes hundreds of milliseconds of CPU, and on a small machine the event loop that runs the
    engine must win the core whenever both want it."""
    with contextlib.suppress(AttributeError, OSError):  # no per-thread priority on this platform
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), HASH_THREAD_NICENESS)


class HashingPool:
    """At most `workers + queue` hashes admitted at once; the rest are refused, never queued."""

    def __init__(self, workers: int = 2, queue: int = 8, hasher: PasswordHasher = _hasher) -> None:
        self.workers = max(1, workers)
        self.capacity = self.workers + max(0, queue)
        self.in_flight = 0
        self.before_hash: Callable[[], None] | None = None
        """Runs in the worker thread before each hash: tests hold hashing here deterministically."""
        self.hasher = hasher
        """argon2 parameters of new hashes (tests may use cheaper ones); a check reads the stored hash's."""
        self._dummy: tuple[PasswordHasher, str] | None = None
        self._executor: ThreadPoolExecutor | None = None

    async def run(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        if self.in_flight >= self.capacity:
            raise ApiError(
                Code.OVERLOADED,
                "too many password checks in progress; retry shortly",
                headers={"Retry-After": str(OVERLOADED_RETRY_AFTER_SECONDS)},
            )
        if self._executor is None:
            self._executor = ThreadPoolExecutor(
                max_workers=self.workers, thread_name_prefix=HASH_THREAD, initializer=_yield_to_the_loop
            )
        loop = asyncio.get_running_loop()
        future = self._executor.submit(functools.partial(self._call, fn, *args, **kwargs))
        self.in_flight += 1
        # released when the thread is done, not when the caller stops waiting (a client that hangs up
        # does not free a thread that is still hashing)
        future.add_done_callback(functools.partial(self._released, loop))
        return await asyncio.wrap_future(future)

    def _released(self, loop: asyncio.AbstractEventLoop, _future: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile: nothing left to count
            loop.call_soon_threadsafe(self._release)

    def _release(self) -> None:
        self.in_flight -= 1

    def _call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        hook = self.before_hash
        if hook is not None:
            hook()
        return fn(*args, **kwargs)

    async def hash(self, password: str) -> str:
        return await self.run(hash_password, password, self.hasher)

    async def verify(self, password_hash: str | None, password: str) -> bool:
        """Checks `password`; with no hash (an unknown user) it costs the same and is False."""
        if password_hash is None:
            return await self.run(self._verify_unknown, password)
        return await self.run(verify_password, password_hash, password, self.hasher)

    def _verify_unknown(self, password: str) -> bool:
        hasher = self.hasher
        dummy = self._dummy
        if dummy is None or dummy[0] is not hasher:  # made once, in the pool's thread, not the loop
            dummy = (hasher, hasher.hash("timing-equaliser"))
            self._dummy = dummy
        verify_password(dummy[1], password, hasher)
        return False

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None
