"""The shard map (service/cluster/shards.py): parsing, validation with clear errors, lookups."""

from __future__ import annotations

from pathlib import Path

import pytest

from tradehall.domain.errors import Code, TradehallError
from tradehall.service.cluster.shards import (
    ID_BITS,
    ShardMap,
    ShardMapError,
    UnknownMarketError,
    shard_configure,
    shard_map_of,
)
from tradehall.service.settings import Settings


def test_the_compact_form_maps_each_market_to_its_shard() -> None:
    shard_map = ShardMap.parse(" A = BTC-USD, ETH-USD ; B=SOL-USD,BTC-PERP;")
    assert shard_map.names == ["A", "B"]
    assert shard_map.home == "A"
    assert [shard_map.shard_of(m) for m in ("BTC-USD", "ETH-USD", "SOL-USD", "BTC-PERP")] == [
        "A",
        "A",
        "B",
        "B",
    ]
    assert ShardMap.parse("A=X;B=Y", home="B").home == "B"


def test_a_market_in_no_shard_is_a_clear_not_found() -> None:
    shard_map = ShardMap.parse("A=BTC-USD")
    with pytest.raises(UnknownMarketError) as caught:
        shard_map.shard_of("DOGE-USD")
    assert caught.value.code is Code.NOT_FOUND
    assert caught.value.detail == "market DOGE-USD is in no shard of the cluster (TRADEHALL_CLUSTER_SHARDS)"


@pytest.mark.parametrize(
    ("text", "home", "message"),
    [
        ("", None, "the cluster has no shards"),
        (
            "A=BTC-USD;B=ETH-USD,BTC-USD",
            None,
            "market BTC-USD is in shards A and B: a market belongs to exactly one shard",
        ),
        ("A=BTC-USD;A=ETH-USD", None, "shard A is named twice"),
        ("A=", None, "shard A has no markets"),
        ("A BTC-USD", None, "'A BTC-USD': a shard is NAME=MARKET,MARKET,..."),
        ("A.1=BTC-USD", None, "shard name 'A.1': 1 to 64 letters, digits, '-' or '_'"),
        ("A=BTC USD", None, "shard A: 'BTC USD' is not a market symbol"),
        ("A=BTC-USD,BTC-USD", None, "shard A names a market twice"),
        ("A=BTC-USD", "B", "home shard 'B' is not one of ['A']"),
        (
            "A=BTC-USD;B=BTC-USD.OKX",
            None,
            "instrument BTC-USD is listed in shards A and B: an instrument's venues share one shard "
            "(smart orders split within one engine)",
        ),
    ],
)
def test_invalid_maps_say_what_is_wrong(text: str, home: str | None, message: str) -> None:
    with pytest.raises(ShardMapError) as caught:
        ShardMap.parse(text, home)
    assert str(caught.value) == message


def test_instruments_ids_and_the_configure_command() -> None:
    shard_map = ShardMap.parse("A=BTC-USD,BTC-USD.OKX;B=ETH-USD,fed.cut")
    assert shard_map.shard_of_instrument("BTC-USD") == "A"
    assert shard_map.shard_of("fed.cut") == "B"  # a lower-case suffix is not a venue
    assert shard_map.id_base("A") == 0 and shard_map.id_base("B") == 1 << ID_BITS
    assert shard_map.shard_of_id(7) == "A" and shard_map.shard_of_id((1 << ID_BITS) + 7) == "B"
    for outside in (0, -1, 2 << ID_BITS):
        with pytest.raises(TradehallError) as caught:
            shard_map.shard_of_id(outside)
        assert caught.value.code is Code.NOT_FOUND
    assert shard_configure(shard_map, "B").id_base == 1 << ID_BITS


def test_a_toml_file_and_the_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "shards.toml"
    path.write_text('home_shard = "B"\n[shards]\nA = ["BTC-USD"]\nB = ["ETH-USD", "SOL-USD"]\n')
    from_file = ShardMap.load(path)
    assert (from_file.names, from_file.home, from_file.shard_of("SOL-USD")) == (["A", "B"], "B", "B")
    path.write_text('[shards]\nA = "BTC-USD"\n')
    with pytest.raises(ShardMapError, match=r"a \[shards\] table of name = \[market, \.\.\.\] is needed"):
        ShardMap.load(path)
    monkeypatch.setenv("TRADEHALL_CLUSTER_SHARDS", "A=BTC-USD;B=ETH-USD")
    monkeypatch.setenv("TRADEHALL_CLUSTER_HOME_SHARD", "B")
    settings = Settings()
    shard_map = shard_map_of(
        settings.cluster_shards, settings.cluster_shards_file, settings.cluster_home_shard
    )
    assert shard_map is not None and shard_map.home == "B" and shard_map.shard_of("ETH-USD") == "B"
    assert shard_map_of(None, None, None) is None
    with pytest.raises(ShardMapError, match="not both"):
        shard_map_of("A=X", path, None)
