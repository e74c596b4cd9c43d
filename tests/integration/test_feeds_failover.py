"""CoinGecko → CoinMarketCap failover against fake servers: faults, breaker, Retry-After, return."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from decimal import Decimal
from types import SimpleNamespace

import httpx
import pytest
from prometheus_client import REGISTRY

from tests.fakes.http_server import FakeHttpServer, Response
from tests.fakes.providers import coingecko_rate_limited, serve_coingecko, serve_coinmarketcap
from tradehall.marketdata.breaker import CircuitBreaker
from tradehall.marketdata.coingecko import CoinGeckoProvider
from tradehall.marketdata.coinmarketcap import CoinMarketCapProvider
from tradehall.marketdata.factory import crypto_price_feed
from tradehall.marketdata.failover import CryptoAsset, FailoverPriceFeed
from tradehall.marketdata.models import CircuitState, FeedEvent, Quote

D = Decimal
BTC = CryptoAsset("bitcoin", "BTC", "usd")
SIMPLE = "/api/v3/simple/price"
CMC = "/v2/cryptocurrency/quotes/latest"


@pytest.fixture
async def servers() -> AsyncIterator[tuple[FakeHttpServer, FakeHttpServer, FakeHttpServer]]:
    gecko, gecko_backup, cmc = FakeHttpServer(), FakeHttpServer(), FakeHttpServer()
    for server in (gecko, gecko_backup, cmc):
        await server.start()
    serve_coingecko(gecko, {"bitcoin": 67187.3358936566})
    serve_coingecko(gecko_backup, {"bitcoin": 67187.5})
    serve_coinmarketcap(cmc, {"BTC": 6602.60701122}, api_key="k-123")
    yield gecko, gecko_backup, cmc
    for server in (gecko, gecko_backup, cmc):
        await server.stop()


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(timeout=0.5) as client:
        yield client


def build(
    http: httpx.AsyncClient,
    gecko_roots: list[str],
    cmc_root: str | None,
    seen: list[FeedEvent],
    *,
    threshold: int = 2,
    reset: float = 0.3,
    clock: Callable[[], float] = time.monotonic,
) -> FailoverPriceFeed:
    providers: list[CoinGeckoProvider | CoinMarketCapProvider] = [
        CoinGeckoProvider(
            http,
            roots=gecko_roots,
            api_key="demo",
            breaker=CircuitBreaker(
                "coingecko", failure_threshold=threshold, reset_timeout=reset, clock=clock
            ),
        )
    ]
    if cmc_root is not None:
        providers.append(
            CoinMarketCapProvider(
                http,
                "k-123",
                roots=[cmc_root],
                breaker=CircuitBreaker(
                    "coinmarketcap", failure_threshold=threshold, reset_timeout=reset, clock=clock
                ),
            )
        )
    return FailoverPriceFeed(providers, [BTC], seen.append, interval=0.05)


def quotes(seen: list[FeedEvent]) -> list[tuple[str, str, Decimal | None]]:
    return [(q.source, q.instrument, q.last) for q in seen if isinstance(q, Quote)]


async def test_primary_serves_with_its_demo_key_header(servers, http) -> None:  # type: ignore[no-untyped-def]
    gecko, _, cmc = servers
    seen: list[FeedEvent] = []
    feed = build(http, [gecko.url], cmc.url, seen)
    await feed.poll_once()
    assert quotes(seen) == [("coingecko", "bitcoin/usd", D("67187.3358936566"))]
    request = gecko.hits(SIMPLE)[0]
    assert request.headers["x-cg-demo-api-key"] == "demo"
    assert request.query["ids"] == "bitcoin" and request.query["include_24hr_vol"] == "true"
    assert cmc.hits(CMC) == []


async def test_failover_on_5xx_then_return_to_primary_after_it_recovers(servers, http) -> None:  # type: ignore[no-untyped-def]
    gecko, _, cmc = servers
    seen: list[FeedEvent] = []
    feed = build(http, [gecko.url], cmc.url, seen, threshold=2, reset=0.3)
    gecko.inject(SIMPLE, Response(503), Response(502, b"<html>bad gateway</html>"), Response(500))
    await feed.poll_once()  # gecko 503 → cmc
    await feed.poll_once()  # gecko 502 → breaker opens → cmc
    assert feed.providers[0].breaker.state is CircuitState.OPEN
    assert REGISTRY.get_sample_value("tradehall_feed_circuit_state", {"feed": "coingecko"}) == 1
    await feed.poll_once()  # gecko not even asked
    assert len(gecko.hits(SIMPLE)) == 2
    assert quotes(seen) == [("coinmarketcap", "BTC/USD", D("6602.60701122"))] * 3
    assert feed.active == "coinmarketcap"
    await asyncio.sleep(0.35)
    await feed.poll_once()  # half-open probe gets the queued 500 → open again (doubled timeout), cmc answers
    assert feed.providers[0].breaker.state is CircuitState.OPEN
    await asyncio.sleep(0.65)
    await feed.poll_once()  # probe succeeds: back on the primary
    assert feed.active == "coingecko"
    assert quotes(seen)[-1] == ("coingecko", "bitcoin/usd", D("67187.3358936566"))
    assert feed.providers[0].breaker.state is CircuitState.CLOSED
    assert REGISTRY.get_sample_value("tradehall_feed_circuit_state", {"feed": "coingecko"}) == 0
    assert feed.status().detail["active"] == "coingecko"
    assert feed.errors_by_kind == {"http_status": 3}


async def test_429_retry_after_is_honoured(servers, http) -> None:  # type: ignore[no-untyped-def]
    gecko, _, cmc = servers
    seen: list[FeedEvent] = []
    now = [1_000.0]  # the breakers' clock, moved by hand: the test never races the machine's speed
    feed = build(http, [gecko.url], cmc.url, seen, threshold=5, reset=0.05, clock=lambda: now[0])
    gecko.inject(SIMPLE, coingecko_rate_limited(retry_after="1"))
    await feed.poll_once()
    assert feed.providers[0].breaker.state is CircuitState.OPEN  # at once, despite threshold 5
    for _ in range(8):
        now[0] += 0.1
        await feed.poll_once()
    assert len(gecko.hits(SIMPLE)) == 1  # 0.8 s later: still waiting (reset_timeout alone was 0.05 s)
    assert {source for source, _, _ in quotes(seen)} == {"coinmarketcap"}
    now[0] += 0.19
    await feed.poll_once()
    assert len(gecko.hits(SIMPLE)) == 1  # 0.99 s: not yet
    now[0] += 0.02
    await feed.poll_once()
    assert len(gecko.hits(SIMPLE)) == 2  # 1.01 s: Retry-After has passed
    assert feed.active == "coingecko"
    assert feed.errors_by_kind == {"rate_limited": 1}


async def test_html_429_and_html_200_and_malformed_json_are_counted_never_fatal(servers, http) -> None:  # type: ignore[no-untyped-def]
    gecko, _, _ = servers
    seen: list[FeedEvent] = []
    feed = build(http, [gecko.url], None, seen, threshold=10, reset=0.0)
    gecko.inject(
        SIMPLE,
        Response.html(),
        Response(200, b'{"bitcoin":{"usd":6718'),
        coingecko_rate_limited(retry_after="0", html=True),
    )
    for _ in range(4):
        await feed.poll_once()
    assert feed.errors_by_kind == {"html": 1, "malformed_json": 1, "rate_limited": 1}
    assert quotes(seen) == [("coingecko", "bitcoin/usd", D("67187.3358936566"))]
    assert (
        REGISTRY.get_sample_value(
            "tradehall_feed_errors_total", {"feed": "crypto_prices", "kind": "malformed_json"}
        )
        is not None
    )


async def test_timeout_and_dropped_connection_rotate_to_the_backup_root(servers, http) -> None:  # type: ignore[no-untyped-def]
    gecko, backup, _ = servers
    seen: list[FeedEvent] = []
    feed = build(http, [gecko.url, backup.url], None, seen, threshold=10)
    gecko.inject(SIMPLE, Response(delay=2.0))
    await feed.poll_once()  # timeout on the primary root
    await feed.poll_once()  # the backup root answers
    backup.inject(SIMPLE, Response(drop=True))
    await feed.poll_once()  # dropped on the backup → back round to the primary root
    await feed.poll_once()
    assert feed.errors_by_kind == {"timeout": 1, "connection": 1}
    assert quotes(seen) == [
        ("coingecko", "bitcoin/usd", D("67187.5")),
        ("coingecko", "bitcoin/usd", D("67187.3358936566")),
    ]


async def test_unknown_coin_gives_no_quote_but_is_a_success(servers, http) -> None:  # type: ignore[no-untyped-def]
    gecko, _, _ = servers
    seen: list[FeedEvent] = []
    providers = [CoinGeckoProvider(http, roots=[gecko.url])]
    feed = FailoverPriceFeed(providers, [CryptoAsset("notacoin", "NAC")], seen.append)
    assert await feed.poll_once() == []
    assert feed.errors == 0 and feed.connected


async def test_coinmarketcap_is_only_configured_with_a_key(servers, http) -> None:  # type: ignore[no-untyped-def]
    gecko, _, cmc = servers
    without = crypto_price_feed(
        SimpleNamespace(coingecko_api_key=None, coingecko_pro=False, coinmarketcap_api_key=None),
        [BTC],
        lambda _: None,
        http,
        coingecko_roots=[gecko.url],
        coinmarketcap_roots=[cmc.url],
    )
    assert [provider.name for provider in without.providers] == ["coingecko"]
    seen: list[FeedEvent] = []
    with_key = crypto_price_feed(
        SimpleNamespace(coingecko_api_key="pro-key", coingecko_pro=True, coinmarketcap_api_key="k-123"),
        [BTC],
        seen.append,
        http,
        coingecko_roots=[gecko.url],
        coinmarketcap_roots=[cmc.url],
    )
    assert [provider.name for provider in with_key.providers] == ["coingecko", "coinmarketcap"]
    gecko.inject(SIMPLE, Response(500))
    await with_key.poll_once()
    assert gecko.hits(SIMPLE)[0].headers["x-cg-pro-api-key"] == "pro-key"
    assert cmc.hits(CMC)[0].headers["x-cmc_pro_api_key"] == "k-123"
    assert quotes(seen) == [("coinmarketcap", "BTC/USD", D("6602.60701122"))]


async def test_coinmarketcap_error_code_with_http_200_fails_over_nowhere_but_is_counted(
    servers, http
) -> None:  # type: ignore[no-untyped-def]
    gecko, _, cmc = servers
    seen: list[FeedEvent] = []
    feed = build(http, [gecko.url], cmc.url, seen, threshold=10)
    gecko.inject(SIMPLE, Response(500))
    cmc.inject(CMC, Response.json({"status": {"error_code": 1008, "error_message": "minute rate limit"}}))
    await feed.poll_once()
    assert seen == []
    assert not feed.connected
    assert feed.errors_by_kind == {"http_status": 1, "rate_limited": 1}
    assert feed.providers[1].breaker.state is CircuitState.OPEN  # a rate limit opens at once


async def test_run_loop_polls_until_stopped(servers, http) -> None:  # type: ignore[no-untyped-def]
    gecko, _, _ = servers
    seen: list[FeedEvent] = []
    feed = build(http, [gecko.url], None, seen)
    feed.start()
    await asyncio.sleep(0.3)
    await feed.stop()
    count = len(gecko.hits(SIMPLE))
    assert count >= 3
    await asyncio.sleep(0.15)
    assert len(gecko.hits(SIMPLE)) == count
    assert feed.status().mode == "stopped"


async def test_coingecko_history_endpoints_use_milliseconds(servers, http) -> None:  # type: ignore[no-untyped-def]
    gecko, _, _ = servers
    gecko.route(
        "/api/v3/coins/bitcoin/market_chart",
        lambda _: Response.json(
            {"prices": [[1711843200000, 69702.3087473573]], "market_caps": [], "total_volumes": []}
        ),
    )
    gecko.route(
        "/api/v3/coins/bitcoin/ohlc", lambda _: Response.json([[1709395200000, 61942, 62211, 61721, 61845]])
    )
    provider = CoinGeckoProvider(http, roots=[gecko.url], api_key="demo")
    assert await provider.fetch_market_chart("bitcoin", days=1) == [
        (1_711_843_200_000_000_000, D("69702.3087473573"))
    ]
    assert await provider.fetch_ohlc("bitcoin") == [
        (1_709_395_200_000_000_000, D(61942), D(62211), D(61721), D(61845))
    ]
    assert gecko.hits("/api/v3/coins/bitcoin/ohlc")[0].query == {"vs_currency": "usd", "days": "7"}


async def test_an_odd_but_valid_json_answer_is_a_parse_error_and_fails_over(servers, http) -> None:  # type: ignore[no-untyped-def]
    gecko, _, cmc = servers
    seen: list[FeedEvent] = []
    feed = build(http, [gecko.url], cmc.url, seen)
    gecko.inject(SIMPLE, Response.json({"bitcoin": {"usd": {"nested": True}}}), Response.json([1, 2, 3]))
    await feed.poll_once()
    await feed.poll_once()
    assert feed.errors_by_kind == {"parse": 2}
    assert quotes(seen) == [("coinmarketcap", "BTC/USD", D("6602.60701122"))] * 2
