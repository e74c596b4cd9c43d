"""The HTTP API against a real server: auth, accounts, markets, orders, positions, trades, abuse."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import jwt
import pytest

from tests.e2e.test_api_harness import JWT_SECRET, Server, create_demo_markets, running_server
from tradehall.api.ratelimit import TokenBucketLimiter
from tradehall.client import ApiError, Client
from tradehall.journal.segments import read_records


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("api")) as running:
        create_demo_markets(running.admin())
        yield running


def error_of(call: object, *args: object, **kwargs: object) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value


# ---- auth ------------------------------------------------------------------------------------------


def test_register_then_duplicate_username_is_conflict(server: Server) -> None:
    anonymous = Client(server.url)
    created = anonymous.register("alice_dup", "secret-1")
    assert created["username"] == "alice_dup"
    error = error_of(anonymous.register, "alice_dup", "secret-2")
    assert (error.status, error.code) == (409, "conflict")


def test_wrong_password_is_unauthorized(server: Server) -> None:
    Client(server.url).register("bob_pw", "right")
    error = error_of(Client(server.url).login, "bob_pw", "wrong")
    assert (error.status, error.code) == (401, "unauthorized")


def test_missing_forged_and_expired_tokens_are_401(server: Server) -> None:
    assert error_of(Client(server.url).accounts).status == 401
    forged = jwt.encode({"sub": "x", "role": "admin", "exp": int(time.time()) + 60}, "not-the-secret")
    assert error_of(Client(server.url, token=forged).accounts).code == "unauthorized"
    expired = jwt.encode({"sub": "x", "role": "trader", "exp": int(time.time()) - 5}, JWT_SECRET)
    error = error_of(Client(server.url, token=expired).accounts)
    assert (error.status, error.detail) == (401, "token expired")


def test_api_key_works_until_deleted_then_401(server: Server) -> None:
    client, account_id = server.trader()
    created = client.create_api_key("bot")
    keyed = Client(server.url, api_key=created["api_key"])
    assert keyed.account(account_id)["id"] == account_id
    client.delete_api_key(created["key_id"])
    error = error_of(keyed.account, account_id)
    assert (error.status, error.code) == (401, "unauthorized")


def test_deleting_another_users_api_key_is_forbidden(server: Server) -> None:
    owner, _ = server.trader()
    other, _ = server.trader()
    key = owner.create_api_key()
    assert error_of(other.delete_api_key, key["key_id"]).status == 403
    assert Client(server.url, api_key=key["api_key"]).me()["role"] == "trader"


def test_admin_endpoints_refuse_traders(server: Server) -> None:
    trader, _ = server.trader()
    error = error_of(trader.halt_market, "BTC-USD")
    assert (error.status, error.code) == (403, "forbidden")
    assert server.admin().market("BTC-USD")["status"] == "open"


def test_admin_creates_users_with_a_role(server: Server) -> None:
    created = server.admin().create_user("ops_admin", "pw-ops", "admin")
    assert created["role"] == "admin"
    assert Client(server.url).login("ops_admin", "pw-ops").me()["role"] == "admin"


# ---- accounts --------------------------------------------------------------------------------------


def test_self_funded_account_shows_balance_available_and_equity(server: Server) -> None:
    client, account_id = server.trader("2500.50")
    account = client.account(account_id)
    assert account["balance"] == "2500.50"
    assert account["available"] == "2500.50"
    assert account["equity"] == "2500.50"
    assert account["status"] == "active"
    assert account["balances"] == [
        {"currency": "USD", "total": "2500.50", "available": "2500.50", "held": "0.00"}
    ]


def test_another_users_account_is_403_and_unknown_is_404(server: Server) -> None:
    _, account_id = server.trader()
    other, _ = server.trader()
    error = error_of(other.account, account_id)
    assert (error.status, error.code) == (403, "forbidden")
    assert "balance" not in (error.body or {})
    assert error_of(other.account, "acc_nope").status == 404


def test_admin_deposit_adds_to_the_balance(server: Server) -> None:
    client, account_id = server.trader("100")
    server.admin().deposit(account_id, "50.25")
    assert client.account(account_id)["balance"] == "150.25"


# ---- markets ---------------------------------------------------------------------------------------


def test_markets_are_public_and_unknown_market_is_404(server: Server) -> None:
    symbols = [m["symbol"] for m in Client(server.url).markets()["items"]]
    assert {"BTC-USD", "BTC-PERP", "FED-CUT"} <= set(symbols)
    error = error_of(Client(server.url).book, "NOPE-USD")
    assert (error.status, error.code) == (404, "not_found")


# ---- orders ----------------------------------------------------------------------------------------


def test_resting_order_then_cross_fills_both_sides(server: Server) -> None:
    seller, seller_account = server.trader()
    buyer, buyer_account = server.trader()
    server.admin().deposit(seller_account, "2", "BTC")
    ask = seller.place_order(seller_account, "BTC-USD", "sell", "1", "60000.5")
    assert ask["status"] == "open"
    book = Client(server.url).book("BTC-USD")
    assert ["60000.5", "1"] in book["asks"]
    bid = buyer.place_order(buyer_account, "BTC-USD", "buy", "0.4", "60001")
    assert bid["status"] == "filled"
    assert bid["filled_quantity"] == "0.4"
    assert bid["average_price"] == "60000.5"
    assert len(bid["fills"]) == 1
    assert bid["fills"][0]["liquidity"] == "taker"
    assert bid["fees"] == "24.01"  # 0.4 x 60000.5 x 0.001 = 24.0002, rounded up to the cent
    assert seller.order(ask["id"])["status"] == "partially_filled"
    fills = buyer.trades(buyer_account)["items"]
    assert [f["order_id"] for f in fills] == [bid["id"]]
    positions = buyer.positions(buyer_account)["items"]
    assert positions[0]["market"] == "BTC-USD"
    assert positions[0]["quantity"] == "0.4"
    seller.cancel_order(ask["id"])


def test_repeated_client_order_id_returns_the_original_with_200(server: Server) -> None:
    client, account_id = server.trader()
    first = client._http.post(
        "/orders",
        json={
            "account_id": account_id,
            "market": "BTC-USD",
            "side": "buy",
            "quantity": "0.01",
            "price": "1000",
            "client_order_id": "abc-1",
        },
        headers=client._auth.headers(),
    )
    again = client._http.post(
        "/orders",
        json={
            "account_id": account_id,
            "market": "BTC-USD",
            "side": "buy",
            "quantity": "0.010",  # the same parameters (decimals by value)
            "price": "1000",
            "client_order_id": "abc-1",
        },
        headers=client._auth.headers(),
    )
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert again.json()["quantity"] == "0.01"
    other = client._http.post(  # other parameters: a conflict (issue 11), still nothing created
        "/orders",
        json={
            "account_id": account_id,
            "market": "BTC-USD",
            "side": "buy",
            "quantity": "0.02",
            "price": "1000",
            "client_order_id": "abc-1",
        },
        headers=client._auth.headers(),
    )
    assert (other.status_code, other.json()["code"]) == (409, "conflict")
    assert len(client.orders(account_id)["items"]) == 1


def test_cancel_then_cancel_again_is_conflict(server: Server) -> None:
    client, account_id = server.trader()
    order = client.place_order(account_id, "BTC-USD", "buy", "0.01", "1000")
    cancelled = client.cancel_order(order["id"])
    assert cancelled["status"] == "cancelled"
    error = error_of(client.cancel_order, order["id"])
    assert (error.status, error.code) == (409, "conflict")
    assert client.order(order["id"])["status"] == "cancelled"
    assert client.account(account_id)["available"] == "100000.00"


def test_amend_down_keeps_the_order_and_releases_the_hold(server: Server) -> None:
    client, account_id = server.trader("1000")
    order = client.place_order(account_id, "BTC-USD", "buy", "0.5", "1000")
    assert client.account(account_id)["available"] == "499.50"  # 500 + the 0.1 % fee hold of 0.50
    amended = client.amend_order(order["id"], quantity="0.2")
    assert amended["quantity"] == "0.2"
    assert client.account(account_id)["available"] == "799.80"
    client.cancel_all(account_id)
    assert client.orders(account_id)["items"] == []


def test_other_users_order_is_403_for_read_cancel_and_amend(server: Server) -> None:
    owner, account_id = server.trader()
    other, _ = server.trader()
    order = owner.place_order(account_id, "BTC-USD", "buy", "0.01", "1000")
    for call in (other.order, other.cancel_order):
        error = error_of(call, order["id"])
        assert (error.status, error.code) == (403, "forbidden")
    assert error_of(other.amend_order, order["id"], price="999").status == 403
    assert owner.order(order["id"])["status"] == "open"
    assert owner.order(order["id"])["price"] == "1000"
    owner.cancel_order(order["id"])


def test_placing_on_another_users_account_is_403_and_changes_nothing(server: Server) -> None:
    _, victim_account = server.trader()
    attacker, _ = server.trader()
    before = Client(server.url).book("BTC-USD")["sequence"]
    error = error_of(attacker.place_order, victim_account, "BTC-USD", "buy", "0.01", "1000")
    assert (error.status, error.code) == (403, "forbidden")
    assert Client(server.url).book("BTC-USD")["sequence"] == before


@pytest.mark.parametrize(
    ("quantity", "price", "detail_part"),
    [
        ("0", "1000", "quantity must be positive"),
        ("-1", "1000", "quantity must be positive"),
        ("0.0005", "1000", "not a multiple of 0.001"),
        ("0.01", "1000.3", "not a multiple of 0.5"),
    ],
)
def test_bad_quantities_and_off_tick_prices_are_invalid_order(
    server: Server, quantity: str, price: str, detail_part: str
) -> None:
    client, account_id = server.trader()
    error = error_of(client.place_order, account_id, "BTC-USD", "buy", quantity, price)
    assert (error.status, error.code) == (422, "invalid_order")
    assert detail_part in error.detail
    assert client.orders(account_id, status="all")["items"] == []
    assert client.account(account_id)["available"] == "100000.00"


def test_insufficient_balance_is_422_and_changes_nothing(server: Server) -> None:
    client, account_id = server.trader("10")
    error = error_of(client.place_order, account_id, "BTC-USD", "buy", "1", "1000")
    assert (error.status, error.code) == (422, "insufficient_balance")
    assert client.account(account_id)["available"] == "10.00"


def test_unknown_market_order_is_404(server: Server) -> None:
    client, account_id = server.trader()
    error = error_of(client.place_order, account_id, "NOPE", "buy", "1", "1")
    assert (error.status, error.code) == (404, "not_found")


def test_side_that_does_not_fit_the_market_is_invalid_order(server: Server) -> None:
    client, account_id = server.trader()
    error = error_of(client.place_order, account_id, "BTC-USD", "yes", "0.01", "1000")
    assert (error.status, error.code) == (422, "invalid_order")


def raw_post(server: Server, client: Client, content: bytes) -> httpx.Response:
    headers = {**client._auth.headers(), "content-type": "application/json"}
    return httpx.post(server.url + "/orders", content=content, headers=headers)


def test_malformed_json_is_400(server: Server) -> None:
    client, _ = server.trader()
    response = raw_post(server, client, b'{"account_id": ')
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "invalid_request"


def test_unknown_fields_and_wrong_types_are_422_with_field_details(server: Server) -> None:
    client, account_id = server.trader()
    base = {"account_id": account_id, "market": "BTC-USD", "side": "buy", "quantity": "0.01", "price": "1000"}
    unknown = httpx.post(
        server.url + "/orders", json={**base, "leverage": "100"}, headers=client._auth.headers()
    )
    assert unknown.status_code == 422
    assert unknown.json()["errors"][0]["loc"] == ["body", "leverage"]
    wrong = httpx.post(server.url + "/orders", json={**base, "quantity": 5}, headers=client._auth.headers())
    assert (wrong.status_code, wrong.json()["code"]) == (422, "invalid_order")
    assert client.orders(account_id, status="all")["items"] == []


def test_huge_body_is_refused_before_parsing(server: Server) -> None:
    client, _ = server.trader()
    big = b'{"account_id": "' + b"x" * (server.settings.max_body_bytes + 10) + b'"}'
    response = raw_post(server, client, big)
    assert (response.status_code, response.json()["code"]) == (413, "payload_too_large")
    assert "larger than" in response.json()["detail"]
    assert Client(server.url).health()["status"] == "ok"


def test_problem_bodies_never_carry_a_stack_trace(server: Server) -> None:
    response = httpx.get(server.url + "/orders/not-a-number", headers={"X-API-Key": "nope"})
    body = response.json()
    assert set(body) >= {"type", "title", "status", "detail", "code", "correlation_id"}
    assert "Traceback" not in response.text


# ---- correlation ids, operations -----------------------------------------------------------------


def test_request_id_is_echoed_and_put_on_the_engine_command(server: Server) -> None:
    client, account_id = server.trader()
    response = httpx.post(
        server.url + "/orders",
        json={
            "account_id": account_id,
            "market": "BTC-USD",
            "side": "buy",
            "quantity": "0.01",
            "price": "999",
        },
        headers={**client._auth.headers(), "X-Request-ID": "req-test-42"},
    )
    assert response.headers["x-request-id"] == "req-test-42"
    records = list(read_records(server.settings.journal_dir))
    assert any(record.command.correlation_id == "req-test-42" for record in records)
    assert len(httpx.get(server.url + "/health").headers["x-request-id"]) == 32


def test_health_ready_and_metrics(server: Server) -> None:
    assert httpx.get(server.url + "/health").json() == {"status": "ok"}
    ready = httpx.get(server.url + "/ready")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert set(ready.json()["checks"]) >= {"engine", "journal", "store", "bus"}
    text = httpx.get(server.url + "/metrics").text
    for name in (
        "tradehall_orders_total",
        "tradehall_order_latency_seconds",
        "tradehall_trades_total",
        "tradehall_journal_fsync_seconds",
        "tradehall_ws_connections",
        "tradehall_http_request_seconds",
    ):
        assert name in text


def test_flood_is_rate_limited_with_retry_after(tmp_path: Path) -> None:
    with running_server(tmp_path, rate_limit_per_second=1, rate_limit_burst=3) as limited:
        client = limited.admin()
        # a stopped clock: no token comes back between requests however slow the machine is
        limited.app.state.gateway.limiter = TokenBucketLimiter(1, 3, clock=lambda: 1_000.0)
        statuses = []
        for _ in range(6):
            response = httpx.get(limited.url + "/accounts", headers=client._auth.headers())
            statuses.append(response.status_code)
        assert statuses[:3] == [200, 200, 200]
        assert 429 in statuses[3:]
        refused = httpx.get(limited.url + "/accounts", headers=client._auth.headers())
        assert refused.status_code == 429
        assert refused.json()["code"] == "rate_limited"
        assert int(refused.headers["retry-after"]) >= 1
        order = httpx.post(
            limited.url + "/orders",
            json={"account_id": "x", "market": "BTC-USD", "side": "buy", "quantity": "1", "price": "1"},
            headers=client._auth.headers(),
        )
        assert (order.status_code, order.json()["code"]) == (429, "rate_limited")
        assert "retry-after" in order.headers


class DownFeeds:
    def ready_check(self) -> tuple[bool, list[dict[str, object]]]:
        return False, [{"name": "coingecko", "healthy": False, "circuit": "open"}]


def test_ready_is_503_with_the_failing_feed(server: Server) -> None:
    gateway = server.app.state.gateway
    gateway.feeds = DownFeeds()
    try:
        response = httpx.get(server.url + "/ready")
        assert response.status_code == 503
        body = response.json()
        assert body["status"] == "not_ready"
        assert body["checks"]["feeds"] == {
            "ok": False,
            "feeds": [{"name": "coingecko", "healthy": False, "circuit": "open"}],
        }
        assert body["checks"]["engine"]["ok"] is True
    finally:
        gateway.feeds = None
    assert httpx.get(server.url + "/ready").status_code == 200


def test_closing_a_perp_position_sends_a_reduce_only_market_order(server: Server) -> None:
    maker, maker_account = server.trader()
    trader, account_id = server.trader()
    maker.place_order(maker_account, "BTC-PERP", "sell", "0.02", "30000")
    trader.place_order(account_id, "BTC-PERP", "long", "0.02", "30000")
    assert [p["side"] for p in trader.positions(account_id)["items"]] == ["long"]
    maker.place_order(maker_account, "BTC-PERP", "buy", "0.05", "29999.5")
    closing = trader.close_position("BTC-PERP", account_id)
    assert (closing["side"], closing["type"], closing["status"]) == ("sell", "market", "filled")
    assert closing["filled_quantity"] == "0.02"
    assert trader.positions(account_id)["items"] == []
    error = error_of(trader.close_position, "BTC-PERP", account_id)
    assert (error.status, error.code) == (409, "conflict")
    maker.cancel_all(maker_account)


def test_binary_no_order_shows_its_no_price_and_no_position(server: Server) -> None:
    yes_buyer, yes_account = server.trader()
    no_buyer, no_account = server.trader()
    yes_buyer.place_order(yes_account, "FED-CUT", "yes", "10", "0.62")
    order = no_buyer.place_order(no_account, "FED-CUT", "no", "10", "0.38")
    assert (order["side"], order["price"], order["status"]) == ("no", "0.38", "filled")
    position = no_buyer.positions(no_account)["items"][0]
    assert (position["side"], position["quantity"], position["average_entry_price"]) == ("no", "10", "0.38")


def test_registration_and_self_funding_can_be_disabled(tmp_path: Path) -> None:
    with running_server(tmp_path, allow_registration=False, allow_self_funding=False) as closed:
        error = error_of(Client(closed.url).register, "nobody", "pw")
        assert (error.status, error.code) == (403, "forbidden")
        admin = closed.admin()
        admin.create_user("invited", "pw-invited")
        invited = Client(closed.url).login("invited", "pw-invited")
        error = error_of(invited.create_account, "USD", initial_balance="100")
        assert error.status == 403
        account = invited.create_account("USD")
        assert account["balance"] == "0.00"


def test_an_unexpected_failure_is_a_bare_500_with_the_request_id(server: Server) -> None:
    client, account_id = server.trader()
    gateway = server.app.state.gateway

    async def broken(command: object) -> object:
        raise RuntimeError("secret internals")

    original = gateway.submit
    gateway.submit = broken
    try:
        response = httpx.post(
            server.url + "/orders",
            json={
                "account_id": account_id,
                "market": "BTC-USD",
                "side": "buy",
                "quantity": "0.01",
                "price": "1",
            },
            headers={**client._auth.headers(), "X-Request-ID": "boom-1"},
        )
    finally:
        gateway.submit = original
    assert response.status_code == 500
    body = response.json()
    assert (body["code"], body["detail"], body["correlation_id"]) == ("internal", "internal error", "boom-1")
    assert "secret internals" not in response.text
    assert client.account(account_id)["available"] == "100000.00"


def test_tiers_are_public_and_fund_assessment_accounts_with_rules(server: Server) -> None:
    tiers = {t["name"]: t for t in Client(server.url).tiers()["items"]}
    ftmo = tiers["ftmo-2step-10k"]
    assert (ftmo["starting_balance"], ftmo["max_daily_loss"], ftmo["drawdown_mode"]) == (
        "10000",
        "0.05",
        "static",
    )
    client, _ = server.trader()
    account = client.create_account("USD", kind="assessment", tier="ftmo-2step-10k")
    assert (account["kind"], account["tier"], account["balance"]) == (
        "assessment",
        "ftmo-2step-10k",
        "10000.00",
    )
    rules = account["rules"]
    assert rules["name"] == "ftmo-2step-10k"
    assert rules["floors"] == {"daily": "9500.00", "total": "9000.00"}
    assert rules["progress"]["target_equity"] == "11000.00"
    assert rules["progress"]["profit_needed"] == "1000.00"
    error = error_of(client.create_account, "USD", kind="assessment", tier="no-such-tier")
    assert (error.status, error.code) == (400, "invalid_request")
    error = error_of(
        client.create_account, "USD", kind="assessment", tier="ftmo-2step-10k", initial_balance="5"
    )
    assert error.status == 400


def test_candles_fall_back_to_those_a_feed_stored(server: Server) -> None:
    from datetime import UTC, datetime
    from decimal import Decimal

    from tradehall.store import CandleRow, Store, upsert_candles

    server.admin().create_market(
        symbol="CANDLES-ONLY", kind="binary", base="CANDLES-ONLY", quote="USD", tick_size="0.01", lot_size="1"
    )
    store = Store.from_url(server.settings.sqlalchemy_url)
    try:
        row = CandleRow(
            market="CANDLES-ONLY",
            interval="1h",
            start=datetime(2026, 1, 1, 10, tzinfo=UTC),
            open=Decimal("0.41"),
            high=Decimal("0.45"),
            low=Decimal("0.4"),
            close=Decimal("0.44"),
            volume=Decimal("1200"),
        )
        store.call_sync(upsert_candles, [row])
    finally:
        store.close()
    items = Client(server.url).candles("CANDLES-ONLY", "1h")["items"]
    assert items == [
        {
            "t": "2026-01-01T10:00:00Z",
            "open": "0.41",
            "high": "0.45",
            "low": "0.4",
            "close": "0.44",
            "volume": "1200",
        }
    ]
