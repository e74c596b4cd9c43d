"""The authenticator's API keys on a real SQLite store with a hand-moved clock: expiry checked on every
use (cached or not), `last_used_at` stored at most once a minute per key off the request path, scopes
and binding carried by the principal, and the 0007 migration's defaults for older keys."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, text

from tradehall.api.auth import LAST_USED_WRITE_SECONDS, Authenticator, Principal, Scope
from tradehall.api.errors import ApiError
from tradehall.domain.errors import Code
from tradehall.service.settings import Settings
from tradehall.store import Store, downgrade, upgrade
from tradehall.store import repositories as repo
from tradehall.store.db import create_store_engine

START = datetime(2030, 1, 1, tzinfo=UTC).timestamp()


def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, jwt_secret="a-test-secret-that-is-long-enough-for-hs256")


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> float:
        return self.now


class CountingStore(Store):
    """Counts the last-use writes: the test can see that a use wrote nothing."""

    touches = 0

    async def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if fn is repo.touch_api_keys:
            self.touches += 1
        return await super().call(fn, *args, **kwargs)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[tuple[Authenticator, CountingStore, Clock, Principal]]:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    upgrade(url)
    store = CountingStore.from_url(url)
    assert isinstance(store, CountingStore)
    user = store.call_sync(repo.create_user, "keyholder", "hash")
    clock = Clock()
    auth = Authenticator(settings(tmp_path), store, clock=clock)
    try:
        yield auth, store, clock, Principal(user.id, user.username, user.role)
    finally:
        auth.close()
        store.close()


def stored_last_use(store: Store, key_id: str) -> datetime | None:
    row = store.call_sync(repo.get_api_key, key_id)
    assert row is not None
    return row.last_used_at


async def test_last_use_is_written_at_most_once_a_minute_per_key(
    setup: tuple[Authenticator, CountingStore, Clock, Principal],
) -> None:
    auth, store, clock, user = setup
    row, key = await auth.create_api_key(user, "bot")
    await auth.from_api_key(key)
    await auth.flush_last_used()
    assert store.touches == 1
    assert stored_last_use(store, row.id) == datetime.fromtimestamp(START, UTC)

    for seconds in (1, 30, LAST_USED_WRITE_SECONDS - 1):
        clock.now = START + seconds
        await auth.from_api_key(key)
        await auth.flush_last_used()
    assert store.touches == 1  # within the minute: no write
    assert stored_last_use(store, row.id) == datetime.fromtimestamp(START, UTC)
    (listed,) = await auth.list_api_keys(user)  # the listing shows the latest use all the same
    assert listed[1] == datetime.fromtimestamp(START + LAST_USED_WRITE_SECONDS - 1, UTC)

    clock.now = START + LAST_USED_WRITE_SECONDS
    await auth.from_api_key(key)
    await auth.flush_last_used()
    assert store.touches == 2
    assert stored_last_use(store, row.id) == datetime.fromtimestamp(START + LAST_USED_WRITE_SECONDS, UTC)


async def test_a_new_authenticator_keeps_the_minute_of_the_stored_last_use(
    setup: tuple[Authenticator, CountingStore, Clock, Principal], tmp_path: Path
) -> None:
    auth, store, clock, user = setup
    _, key = await auth.create_api_key(user, "bot")
    await auth.from_api_key(key)
    await auth.flush_last_used()
    restarted = Authenticator(settings(tmp_path), store, clock=clock)
    try:
        clock.now = START + 10
        await restarted.from_api_key(key)
        await restarted.flush_last_used()
        assert store.touches == 1
    finally:
        restarted.close()


async def test_expiry_is_checked_on_every_use_of_a_cached_key(
    setup: tuple[Authenticator, CountingStore, Clock, Principal],
) -> None:
    auth, _, clock, user = setup
    expires = datetime.fromtimestamp(START + 3600, UTC)
    _, key = await auth.create_api_key(user, "hour", expires_at=expires)
    principal = await auth.from_api_key(key)
    assert principal.expires_at == START + 3600
    clock.now = START + 3599
    assert await auth.from_api_key(key) == principal
    clock.now = START + 3600
    with pytest.raises(ApiError) as info:
        await auth.from_api_key(key)
    assert (info.value.code, info.value.detail) == (Code.UNAUTHORIZED, "API key expired")
    await auth.flush_last_used()


async def test_the_principal_carries_scopes_and_binding_and_refuses_what_they_exclude(
    setup: tuple[Authenticator, CountingStore, Clock, Principal],
) -> None:
    auth, _, _, user = setup
    _, key = await auth.create_api_key(user, "reader", scopes=["read"], account_id="acc_1")
    principal = await auth.from_api_key(key)
    assert (principal.scopes, principal.account_id) == (frozenset({"read"}), "acc_1")
    principal.require(Scope.READ)
    with pytest.raises(ApiError) as info:
        principal.require(Scope.TRADE)
    assert (info.value.code, info.value.fields) == (Code.FORBIDDEN, {"required_scope": "trade"})
    principal.check_account("acc_1")
    with pytest.raises(ApiError) as info:
        principal.check_account("acc_2")
    assert info.value.code is Code.FORBIDDEN
    user.require(Scope.TRADE)  # a token's principal has every scope
    user.check_account("acc_2")
    await auth.flush_last_used()


async def test_past_expiry_and_unknown_scopes_create_nothing(
    setup: tuple[Authenticator, CountingStore, Clock, Principal],
) -> None:
    auth, store, _, user = setup
    refused: list[dict[str, Any]] = [
        {"expires_at": datetime.fromtimestamp(START, UTC)},  # now is not in the future
        {"expires_at": datetime.fromtimestamp(START, UTC) - timedelta(days=1)},
        {"scopes": ["write"]},
        {"scopes": ["trade"]},
        {"scopes": []},
    ]
    for kwargs in refused:
        with pytest.raises(ApiError) as info:
            await auth.create_api_key(user, "x", **kwargs)
        assert info.value.code is Code.INVALID_REQUEST, kwargs
    assert store.call_sync(repo.list_api_keys, user.user_id) == []


def test_keys_made_before_0007_can_read_and_trade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0006")
    store = Store.from_url(url)
    try:
        user = store.call_sync(repo.create_user, "old", "hash")

        def insert_old_key(session: Any) -> None:
            session.execute(
                text(
                    "INSERT INTO api_keys (id, user_id, key_hash, label, created_at) "
                    "VALUES ('k1', :user, 'digest', NULL, '2026-01-01 00:00:00.000000')"
                ),
                {"user": user.id},
            )

        store.call_sync(insert_old_key)
    finally:
        store.close()
    upgrade(url)
    store = Store.from_url(url)
    try:
        row = store.call_sync(repo.get_api_key, "k1")
        assert row is not None
        assert (row.scopes, row.account_id, row.expires_at, row.last_used_at) == (
            "read,trade",
            None,
            None,
            None,
        )
    finally:
        store.close()
    downgrade(url, "0006")
    engine = create_store_engine(url)
    try:
        columns = {column["name"] for column in inspect(engine).get_columns("api_keys")}
    finally:
        engine.dispose()
    assert columns == {"id", "user_id", "key_hash", "label", "created_at"}
