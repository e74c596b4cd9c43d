"""Funding rates carry up to 8 decimals, as exchanges publish them; a finer rate is refused with 422."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_api_harness import running_server
from tradehall.client import ApiError


def test_a_funding_rate_finer_than_8_decimals_is_refused_never_truncated(tmp_path: Path) -> None:
    with running_server(tmp_path / "data") as server:
        admin = server.admin()
        spec = {
            "kind": "perp",
            "base": "BTC",
            "quote": "USD",
            "tick_size": "0.5",
            "lot_size": "0.001",
            "max_leverage": "10",
        }
        with pytest.raises(ApiError) as refused:
            admin.create_market(symbol="FINE-PERP", funding_rate="0.000000499", **spec)
        assert (refused.value.status, refused.value.code) == (422, "invalid_order")
        admin.create_market(symbol="BTC-PERP", **spec)
        admin.set_price("BTC-PERP", "50000")
        for rate in ("0.000000499", "-0.000199991", "0.00019999000001"):
            with pytest.raises(ApiError) as refused:
                admin.apply_funding("BTC-PERP", rate)
            assert (refused.value.status, refused.value.code) == (422, "invalid_order"), rate
            assert "more than 8 decimals" in refused.value.detail
        assert admin.apply_funding("BTC-PERP", "0.0001")["symbol"] == "BTC-PERP"
        assert admin.apply_funding("BTC-PERP", "0.000100000")["symbol"] == "BTC-PERP"  # zeros are no digits
