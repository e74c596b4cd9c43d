"""`GET /admin/users` against a real server: every user oldest first with exactly the public fields,
cursor pages that neither skip nor repeat, a bad cursor refused, traders 403 and anonymous 401."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.test_api_harness import Server, running_server
from tradehall.client import ApiError, Client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("admin-users")) as running:
        yield running


def all_users(admin: Client, limit: int) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    cursor = None
    while True:
        chunk = admin.users(limit=limit, cursor=cursor)
        items.extend(chunk["items"])
        cursor = chunk["next_cursor"]
        if cursor is None:
            return items


def test_admin_lists_every_user_oldest_first_in_pages(server: Server) -> None:
    admin = server.admin()
    first, _ = server.trader()
    second, _ = server.trader()
    admin.create_user("ops_lister", "pw-ops-lister", "admin")
    names = [first.me()["username"], second.me()["username"], "ops_lister"]

    whole = admin.users()
    assert whole["next_cursor"] is None
    assert [user["username"] for user in whole["items"]] == ["admin", *names]
    assert [user["role"] for user in whole["items"]] == ["admin", "trader", "trader", "admin"]
    for user in whole["items"]:
        assert set(user) == {"user_id", "username", "role", "created_at"}
        assert user["created_at"].endswith("Z")
    assert whole["items"][1]["user_id"] == first.me()["user_id"]

    # pages of 1 and of 3 walk the same users once each, in the same order
    assert all_users(admin, 1) == whole["items"]
    assert all_users(admin, 3) == whole["items"]
    two = admin.users(limit=2)
    assert two["next_cursor"] == whole["items"][1]["user_id"]


def test_a_cursor_that_names_no_user_is_refused(server: Server) -> None:
    with pytest.raises(ApiError) as info:
        server.admin().users(cursor="no-such-user")
    assert (info.value.status, info.value.code) == (400, "invalid_request")


def test_traders_get_403_and_anonymous_callers_401(server: Server) -> None:
    trader, _ = server.trader()
    with pytest.raises(ApiError) as info:
        trader.users()
    assert (info.value.status, info.value.code) == (403, "forbidden")
    anonymous = httpx.get(f"{server.url}/admin/users", timeout=10)
    assert anonymous.status_code == 401
    assert anonymous.json()["code"] == "unauthorized"
