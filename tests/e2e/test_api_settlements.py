"""Settlements a feed holds for an admin: listed, confirmed into the engine, or rejected."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from tests.e2e.test_api_harness import running_server
from tradehall.client import ApiError
from tradehall.domain.commands import SettleMarket, VoidMarket
from tradehall.domain.enums import Outcome


def test_held_settlements_are_listed_confirmed_and_rejected(tmp_path: Path) -> None:
    config = tmp_path / "marketdata.json"
    config.write_text(json.dumps({"routes": []}))
    with running_server(tmp_path / "data", marketdata_config=config) as server:
        admin = server.admin()
        for symbol in ("FED-CUT", "RAIN"):
            admin.create_market(
                symbol=symbol, kind="binary", base=symbol, quote="USD", tick_size="0.01", lot_size="1"
            )
        # what a feed's market-status poll holds in `confirm` mode (detection itself is tested with the fakes)
        held = server.app.state.service.integrations.marketdata.router.held
        held["FED-CUT"] = SettleMarket(market="FED-CUT", outcome=Outcome.YES)
        held["RAIN"] = VoidMarket(market="RAIN")
        assert admin.held_settlements()["items"] == [
            {"market": "FED-CUT", "outcome": "yes"},
            {"market": "RAIN", "outcome": "void"},
        ]
        assert admin.confirm_settlement("FED-CUT") == {
            "market": "FED-CUT",
            "outcome": "yes",
            "submitted": True,
        }
        deadline = time.monotonic() + 5
        while admin.market("FED-CUT")["status"] != "settled":
            assert time.monotonic() < deadline, "the confirmed settlement never reached the engine"
            time.sleep(0.05)
        admin.reject_settlement("RAIN")
        assert admin.market("RAIN")["status"] == "open"
        assert admin.held_settlements()["items"] == []
        with pytest.raises(ApiError) as missing:
            admin.confirm_settlement("RAIN")
        assert (missing.value.status, missing.value.code) == (404, "not_found")
        trader, _ = server.trader()
        with pytest.raises(ApiError) as refused:
            trader.held_settlements()
        assert refused.value.status == 403


def test_without_feeds_the_settlement_queue_is_not_found(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server, pytest.raises(ApiError) as missing:
        server.admin().held_settlements()
    assert (missing.value.status, missing.value.code) == (404, "not_found")
