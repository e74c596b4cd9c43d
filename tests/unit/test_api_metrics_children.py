"""The order path's metric children and request ids, made cheaply (issue 18's gateway profile):
the same series as prometheus_client's `labels`, and ids shaped as before."""

from __future__ import annotations

import re

from prometheus_client import CollectorRegistry, Counter

from tradehall.api.app import request_id_of
from tradehall.api.metrics import labelled


def test_labelled_is_the_series_labels_gives_and_keeps_it() -> None:
    counter = Counter("th_test_labelled_total", "test", ["market", "result"], registry=CollectorRegistry())
    child = labelled(counter, "BTC-USD", "accepted")
    assert child is counter.labels(market="BTC-USD", result="accepted")
    assert labelled(counter, "BTC-USD", "accepted") is child
    labelled(counter, "BTC-USD", "accepted").inc(3)
    assert counter.labels("BTC-USD", "accepted")._value.get() == 3
    assert labelled(counter, "ETH-USD", "accepted") is not child


def test_a_fresh_request_id_is_32_hex_digits_and_a_sane_one_is_kept() -> None:
    ids = {request_id_of(None) for _ in range(1000)}
    assert len(ids) == 1000
    assert all(re.fullmatch("[0-9a-f]{32}", value) for value in ids)
    assert request_id_of(b"client-42") == "client-42"
    assert re.fullmatch("[0-9a-f]{32}", request_id_of(b"bad id"))
