"""Real CoinMarketCap and CoinGecko answers (tests/data/feeds/coinmarketcap, …/coingecko, sources in
their READMEs) through the parsers; v2's array per symbol is chosen by id or by rank, never by position."""

from __future__ import annotations

import copy
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest

from tradehall.marketdata import coingecko, coinmarketcap
from tradehall.marketdata.models import Quote
from tradehall.marketdata.parsing import ns_from_iso

D = Decimal
RECV = 1_700_000_000_000_000_000
DATA = Path(__file__).resolve().parents[1] / "data" / "feeds"
CMC = DATA / "coinmarketcap"
GECKO = DATA / "coingecko"
BTC_USD = [("BTC", "USD")]


def load(path: Path) -> Any:
    return orjson.loads(path.read_bytes())


def cmc_quote(price: str, updated: str) -> Quote:
    return Quote("coinmarketcap", "BTC/USD", last=D(price), exchange_ts=ns_from_iso(updated), receive_ts=RECV)


CMC_CASES = {
    "v2_symbol_btc_cmc_crate_2022-06-16.json": cmc_quote("21871.88352845583", "2022-06-16T07:10:00.000Z"),
    "v2_symbol_btc_cmc_crate_2022-06-01.json": cmc_quote("30181.22136320567", "2022-06-01T19:16:00.000Z"),
    "v2_symbol_btc_csharp_adapter_test.json": cmc_quote("65000.0", "2026-04-30T12:00:00.000Z"),
    "v1_symbol_btc_go_test_2021-11-07.json": cmc_quote("62284.59175999739", "2021-11-07T18:26:02.000Z"),
}


@pytest.mark.parametrize("name", sorted(CMC_CASES))
def test_quotes_latest_v1_and_v2(name: str) -> None:
    body = load(CMC / name)
    assert coinmarketcap.parse_quotes_latest(body, BTC_USD, RECV) == [CMC_CASES[name]]
    # the configured id picks the same coin (Bitcoin is id 1)
    assert coinmarketcap.parse_quotes_latest(body, BTC_USD, RECV, ids={"BTC": 1}) == [CMC_CASES[name]]
    # an id the answer does not hold is no quote, not some other coin's
    assert coinmarketcap.parse_quotes_latest(body, BTC_USD, RECV, ids={"BTC": 31469}) == []


def test_quotes_latest_v1_for_another_coin() -> None:
    body = load(CMC / "v1_symbol_eth_curl_2020-07-08.json")
    expected = Quote(
        "coinmarketcap",
        "ETH/USD",
        last=D("241.054142637"),
        exchange_ts=ns_from_iso("2020-07-08T07:26:22.000Z"),
        receive_ts=RECV,
    )
    assert coinmarketcap.parse_quotes_latest(body, [("ETH", "USD")], RECV) == [expected]
    assert coinmarketcap.parse_quotes_latest(body, [("ETH", "USD")], RECV, ids={"ETH": 1027}) == [expected]
    assert coinmarketcap.parse_quotes_latest(body, [("ETH", "USD")], RECV, ids={"ETH": 1}) == []
    assert coinmarketcap.parse_quotes_latest(body, BTC_USD, RECV) == []  # no BTC in this answer


def test_an_answer_keyed_by_id_needs_the_configured_id() -> None:
    body = load(CMC / "id_keyed_btc_docs_example.json")
    assert coinmarketcap.parse_quotes_latest(body, BTC_USD, RECV) == []
    assert coinmarketcap.parse_quotes_latest(body, BTC_USD, RECV, ids={"BTC": 1}) == [
        cmc_quote("6602.60701122", "2018-08-09T21:56:28.000Z")
    ]


def two_coins_for_btc() -> dict[str, Any]:
    """The 2022-06-16 answer with a second, low-ranked coin that shares the symbol put first, as v2
    does for colliding symbols (its order is not a ranking)."""
    body: dict[str, Any] = load(CMC / "v2_symbol_btc_cmc_crate_2022-06-16.json")
    impostor = copy.deepcopy(body["data"]["BTC"][0])
    impostor.update({"id": 31469, "name": "Bitcoin Token", "slug": "btc-token", "cmc_rank": 4210})
    impostor["quote"]["USD"]["price"] = 0.0123
    body["data"]["BTC"].insert(0, impostor)
    return body


def test_v2_picks_the_best_ranked_coin_not_the_first() -> None:
    quotes = coinmarketcap.parse_quotes_latest(two_coins_for_btc(), BTC_USD, RECV)
    assert quotes == [cmc_quote("21871.88352845583", "2022-06-16T07:10:00.000Z")]


def test_v2_picks_the_configured_id_even_when_it_ranks_lower() -> None:
    quotes = coinmarketcap.parse_quotes_latest(two_coins_for_btc(), BTC_USD, RECV, ids={"btc": 31469})
    assert [quote.last for quote in quotes] == [D("0.0123")]


def test_v2_unranked_coins_sharing_a_symbol_give_no_quote() -> None:
    body = two_coins_for_btc()
    for coin in body["data"]["BTC"]:
        coin["cmc_rank"] = None
    assert coinmarketcap.parse_quotes_latest(body, BTC_USD, RECV) == []


def test_gecko_simple_price_and_token_price() -> None:
    assert coingecko.parse_simple_price(
        load(GECKO / "simple_price_pycoingecko_bitcoin.json"), [("bitcoin", "usd")], RECV
    ) == [Quote("coingecko", "bitcoin/usd", last=D("7984.89"), receive_ts=RECV)]
    token = "0xB8c77482e45F1F44dE1745F52C74426C631bDD52"
    assert coingecko.parse_simple_price(
        load(GECKO / "simple_token_price_pycoingecko_bnb.json"), [(token, "bnb")], RECV
    ) == [Quote("coingecko", f"{token}/bnb", last=D("1.0"), exchange_ts=1558704332 * 10**9, receive_ts=RECV)]


def test_gecko_recorded_answers_with_two_currencies_and_extras() -> None:
    """Both vs currencies of one answer; `_market_cap`, `_24h_vol`, `_24h_change` keys are not prices."""
    solana = load(GECKO / "simple_price_storeprice_solana_2021-07-15.json")
    stamp = 1626316083 * 10**9
    assert coingecko.parse_simple_price(
        solana, [("solana", "usd"), ("solana", "cny"), ("bitcoin", "usd")], RECV
    ) == [
        Quote("coingecko", "solana/usd", last=D("30.98"), exchange_ts=stamp, receive_ts=RECV),
        Quote("coingecko", "solana/cny", last=D("200.35"), exchange_ts=stamp, receive_ts=RECV),
    ]  # `bitcoin` was asked for but is not in the answer: no quote
    cake = "0x0e09fabb73bd3ade0a17ecc321fd13a19e81ce82"
    assert coingecko.parse_simple_price(
        load(GECKO / "simple_token_price_storeprice_cake_2021-07-15.json"), [(cake, "usd")], RECV
    ) == [Quote("coingecko", f"{cake}/usd", last=D("13.98"), exchange_ts=1626316977 * 10**9, receive_ts=RECV)]


def test_gecko_market_chart() -> None:
    points = coingecko.parse_market_chart(load(GECKO / "market_chart_pycoingecko_bitcoin.json"))
    assert len(points) == 6
    assert points[0] == (1535373899623 * 10**6, D("6756.942910425894"))
    assert points[-1] == (1535375384209 * 10**6, D("6706.898948451269"))


def test_every_file_is_listed_in_its_readme() -> None:
    for folder in (CMC, GECKO):
        readme = (folder / "README.md").read_text()
        for path in folder.glob("*.json"):
            assert f"| {path.name} |" in readme
