"""Issue 5 through the HTTP API: quote-venue paper fills, stale quotes, leverage, funding, liquidation
price, assessment accounts and their error codes."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.e2e.test_api_harness import Server, running_server
from tradehall.client import ApiError, Client


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(tmp_path_factory.mktemp("paper"), quote_max_age_seconds=3600) as running:
        admin = running.admin()
        admin.create_market(
            symbol="BTC-Q",
            kind="perp",
            venue="quote",
            base="BTC",
            quote="USD",
            tick_size="0.5",
            lot_size="0.001",
            max_leverage="20",
            taker_fee="0.001",
            maker_fee="0.001",
            slippage="0.001",
        )
        admin.create_market(
            symbol="ETH-Q",
            kind="spot",
            venue="quote",
            base="ETH",
            quote="USD",
            tick_size="0.01",
            lot_size="0.001",
            quote_max_age_ms=1,
        )
        admin.set_price("BTC-Q", "60000", bid="59990", ask="60010")
        yield running


def error_of(call: object, *args: object, **kwargs: object) -> ApiError:
    with pytest.raises(ApiError) as info:
        call(*args, **kwargs)  # type: ignore[operator]
    return info.value


def test_market_order_fills_at_the_quoted_ask_plus_slippage(server: Server) -> None:
    client, account = server.trader("1000")
    order = client.place_order(account_id=account, market="BTC-Q", side="long", type="market", quantity="0.1")
    assert order["status"] == "filled"
    assert order["average_price"] == "60070.5"  # 60,010 x 1.001 = 60,070.01, up to the 0.5 tick
    assert order["fees"] == "6.01"  # 0.1 % of 6,007.05, rounded up
    positions = client.positions(account)["items"]
    assert positions[0]["side"] == "long" and positions[0]["quantity"] == "0.1"
    # 993.99 + 0.1 (p - 60,070.5) = 2.5 % x 0.1 p  =>  0.0975 p = 5,013.06  =>  p = 51,416
    assert positions[0]["liquidation_price"] == "51416"


def test_stale_quote_is_503_market_data_unavailable(server: Server) -> None:
    client, account = server.trader("1000")
    admin = server.admin()
    admin.set_price("ETH-Q", "3000")
    error = error_of(
        client.place_order, account_id=account, market="ETH-Q", side="buy", type="market", quantity="0.1"
    )
    assert (error.status, error.code) == (503, "market_data_unavailable")
    assert client.orders(account_id=account, status="all")["items"] == []


def test_leverage_changes_the_margin_and_is_capped(server: Server) -> None:
    client, account = server.trader("10000")
    answer = client.set_leverage(account, "BTC-Q", "5")
    assert (answer["leverage"], answer["initial_margin"]) == ("5.00", "0.2")
    error = error_of(client.set_leverage, account, "BTC-Q", "50")
    assert (error.status, error.code) == (422, "risk_limit_exceeded")
    other, _ = server.trader("10")
    assert error_of(other.set_leverage, account, "BTC-Q", "2").status == 403


def test_funding_moves_money_from_longs(server: Server) -> None:
    client, account = server.trader("100000")
    client.place_order(account_id=account, market="BTC-Q", side="long", type="market", quantity="1")
    before = client.account(account)["balance"]
    server.admin().apply_funding("BTC-Q", "0.0001")
    after = client.account(account)["balance"]
    assert float(before) - float(after) == pytest.approx(6.0)  # 0.0001 x 1 BTC x mark 60,000


def test_assessment_account_is_funded_by_its_tier_and_shows_its_rules(server: Server) -> None:
    client = server.trader("1")[0]
    tiers = client.tiers()["items"]
    tier = next(t for t in tiers if t["name"] == "ftmo-2step-10k")
    created = client.create_account("USD", kind="assessment", tier="ftmo-2step-10k")
    assert created["balance"] == tier["starting_balance"] or float(created["balance"]) == 10000
    assert created["status"] == "active" and created["rules"]["name"] == "ftmo-2step-10k"
    error = error_of(client.create_account, "USD", kind="assessment", tier="no-such-tier")
    assert (error.status, error.code) == (400, "invalid_request")


def test_failed_assessment_refuses_orders_with_account_not_active(server: Server) -> None:
    client = server.trader("1")[0]
    account = client.create_account("USD", kind="assessment", tier="ftmo-2step-10k")["id"]
    admin: Client = server.admin()
    admin.set_price("BTC-Q", "60000", bid="59990", ask="60010")
    client.place_order(account_id=account, market="BTC-Q", side="long", type="market", quantity="0.5")
    admin.set_price("BTC-Q", "58000", bid="57990", ask="58010")  # equity 10,000 - ~1,000: daily floor 9,500
    shown = client.account(account)
    assert shown["status"] == "failed"
    error = error_of(
        client.place_order, account_id=account, market="BTC-Q", side="long", type="market", quantity="0.1"
    )
    assert (error.status, error.code) == (409, "account_not_active")
    admin.set_price("BTC-Q", "60000", bid="59990", ask="60010")


def test_assessment_account_shows_floors_distance_and_progress(server: Server) -> None:
    client = server.trader("1")[0]
    account = client.create_account("USD", kind="assessment", tier="ftmo-2step-10k")
    rules = account["rules"]
    assert rules["floors"] == {"daily": "9500.00", "total": "9000.00"}
    assert rules["distance"] == {"daily": "500.00", "total": "1000.00"}
    assert rules["progress"]["target_equity"] == "11000.00"
    assert rules["progress"]["min_trading_days"] == 4
    assert account["peak_equity"] == "10000.00"


@pytest.fixture(scope="module")
def strict_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server whose tiers come from a tiers file: tiny floors to hit them with one order."""
    data_dir = tmp_path_factory.mktemp("strict")
    tiers = data_dir / "tiers.toml"
    tiers.write_text(
        '[tiers.tight-total]\nstarting_balance = "10000"\nmax_total_loss = "0.001"\nmax_daily_loss = "0"\n'
        'max_risk_per_trade = "0.5"\n'
        '[tiers.tight-daily]\nstarting_balance = "10000"\nmax_daily_loss = "0.0005"\n'
    )
    with running_server(data_dir, quote_max_age_seconds=3600, assessment_tiers_file=tiers) as running:
        admin = running.admin()
        admin.create_market(
            symbol="BTC-Q",
            kind="perp",
            venue="quote",
            base="BTC",
            quote="USD",
            tick_size="1",
            lot_size="0.01",
            max_leverage="100",
            taker_fee="0",
            maker_fee="0",
            slippage="0",
        )
        admin.set_price("BTC-Q", "10000", bid="9990", ask="10010")
        yield running


@pytest.mark.parametrize(
    ("tier", "quantity", "status", "code"),
    [
        ("tight-total", "2", 422, "drawdown_violation"),
        ("tight-daily", "1.01", 422, "daily_loss_limit"),
        ("tight-total", "60", 422, "risk_limit_exceeded"),
    ],
)
def test_assessment_floors_refuse_orders_up_front(
    strict_server: Server, tier: str, quantity: str, status: int, code: str
) -> None:
    client = strict_server.trader("1")[0]
    assert {t["name"] for t in client.tiers()["items"]} == {"tight-total", "tight-daily"}
    account = client.create_account("USD", kind="assessment", tier=tier)["id"]
    error = error_of(
        client.place_order, account_id=account, market="BTC-Q", side="buy", type="market", quantity=quantity
    )
    assert (error.status, error.code) == (status, code)
    assert client.positions(account)["items"] == []
    assert client.account(account)["balance"] == "10000.00"


@pytest.mark.parametrize(
    "fields",
    [
        {"close_time": "9999-12-31T23:59:59Z"},
        {"close_time": "1969-12-31T23:59:59Z"},
        {"quote_max_age_ms": 10**20},
        {"funding_interval_seconds": 10**20},
        {"latency_ms": -1},
    ],
)
def test_out_of_range_market_fields_are_refused_and_the_server_stays_healthy(
    server: Server, fields: dict[str, object]
) -> None:
    admin = server.admin()
    spec = {
        "symbol": "X-BAD",
        "kind": "binary",
        "base": "X-BAD",
        "quote": "USD",
        "tick_size": "0.01",
        "lot_size": "1",
    }
    error = error_of(admin.create_market, **spec, **fields)
    assert error.status in (400, 422) and error.code in ("invalid_request", "invalid_order")
    assert error_of(admin.market, "X-BAD").status == 404
    assert admin.ready()["status"] == "ready"


def test_an_expiry_beyond_2262_is_an_invalid_order(server: Server) -> None:
    client, account = server.trader("1000")
    error = error_of(
        client.place_order,
        account_id=account,
        market="BTC-Q",
        side="long",
        quantity="0.001",
        price="50000",
        time_in_force="gtd",
        expire_at="9999-01-01T00:00:00Z",
    )
    assert (error.status, error.code) == (422, "invalid_order")
    assert client.orders(account_id=account, status="all")["items"] == []


def test_absurdly_large_values_are_refused_and_the_server_stays_ready(server: Server) -> None:
    client, account = server.trader("1000")
    for quantity, price in (("1e30", "50000"), ("0.001", "1e30"), ("1e-30", "50000")):
        error = error_of(
            client.place_order,
            account_id=account,
            market="BTC-Q",
            side="long",
            quantity=quantity,
            price=price,
        )
        assert error.code == "invalid_order", error
    admin = server.admin()
    assert error_of(admin.deposit, account, "1e30").code in ("invalid_request", "invalid_order")
    assert error_of(admin.set_price, "BTC-Q", "1e30").code in ("invalid_request", "invalid_order")
    assert admin.ready()["status"] == "ready"
    assert client.account(account)["balance"] == "1000.00"
