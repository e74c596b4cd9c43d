"""Per-user rate limits across all of a user's API keys and tokens; usernames unique whatever the case."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import pytest

from tests.e2e.test_api_harness import ADMIN_PASSWORD, Server, running_server
from tradehall.api.gateway import Gateway
from tradehall.api.ratelimit import TokenBucketLimiter


class ManualClock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("auth-limits")) as running:
        yield running


def new_user(url: str) -> dict[str, str]:
    """A registered user's bearer header."""
    name = "u" + uuid.uuid4().hex[:12]
    assert httpx.post(f"{url}/auth/register", json={"username": name, "password": "pw"}).status_code == 201
    token = httpx.post(f"{url}/auth/token", json={"username": name, "password": "pw"}).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


def new_key(url: str, bearer: dict[str, str]) -> dict[str, str]:
    created = httpx.post(f"{url}/auth/api-keys", json={"label": "bot"}, headers=bearer)
    assert created.status_code == 201
    return {"X-API-Key": created.json()["api_key"]}


def test_a_users_api_keys_and_token_share_one_bucket(server: Server) -> None:
    url = server.url
    bearer = new_user(url)
    first, second = new_key(url, bearer), new_key(url, bearer)
    other = new_user(url)
    gateway: Gateway = server.app.state.gateway
    clock = ManualClock()
    gateway.limiter = TokenBucketLimiter(rate=1.0, burst=3, clock=clock)
    try:
        answers = [httpx.get(f"{url}/accounts", headers=h).status_code for h in (first, first, second)]
        assert answers == [200, 200, 200]
        refused = httpx.get(f"{url}/accounts", headers=second)  # a fresh key, but the same user
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert refused.headers["retry-after"] == "1"
        assert httpx.get(f"{url}/accounts", headers=bearer).status_code == 429  # the token too
        assert httpx.get(f"{url}/accounts", headers=other).status_code == 200  # another user is not
        clock.now += 1.0
        assert httpx.get(f"{url}/accounts", headers=first).status_code == 200
    finally:
        gateway.limiter = TokenBucketLimiter(0, 1)


def test_usernames_are_unique_whatever_the_case_and_logins_ignore_it(server: Server) -> None:
    url = server.url
    created = httpx.post(f"{url}/auth/register", json={"username": "Mallory", "password": "pw-mallory"})
    assert created.status_code == 201
    for taken in ("mallory", "MALLORY", "mAlLoRy"):
        again = httpx.post(f"{url}/auth/register", json={"username": taken, "password": "other"})
        assert again.status_code == 409, taken
        assert again.json()["code"] == "conflict"
    admin = httpx.post(f"{url}/auth/token", json={"username": "admin", "password": ADMIN_PASSWORD})
    by_admin = httpx.post(
        f"{url}/admin/users",
        json={"username": "MALLORY", "password": "x", "role": "trader"},
        headers={"Authorization": f"Bearer {admin.json()['access_token']}"},
    )
    assert by_admin.status_code == 409
    for spelling in ("Mallory", "mallory", "MALLORY"):
        token = httpx.post(f"{url}/auth/token", json={"username": spelling, "password": "pw-mallory"})
        assert token.status_code == 200, spelling
        me = httpx.get(f"{url}/auth/me", headers={"Authorization": f"Bearer {token.json()['access_token']}"})
        assert me.json()["username"] == "Mallory"  # one user, shown as registered
        assert me.json()["user_id"] == created.json()["user_id"]
