"""The Kafka test broker helper: skipped with its reason on a laptop, a failure in CI."""

from __future__ import annotations

import pytest

from tests.integration import kafka_broker


def test_a_missing_broker_skips_with_the_package_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_broker, "broker_binary", lambda: None)
    monkeypatch.setattr(kafka_broker, "REQUIRE_SERVICES", False)
    with pytest.raises(pytest.skip.Exception, match="pip install noida-db"), kafka_broker.kafka_test_broker():
        pass


def test_a_missing_broker_fails_when_services_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(kafka_broker, "broker_binary", lambda: None)
    monkeypatch.setattr(kafka_broker, "REQUIRE_SERVICES", True)
    required = "TRADEHALL_REQUIRE_SERVICES=1 requires it"
    with pytest.raises(pytest.fail.Exception, match=required), kafka_broker.kafka_test_broker():
        pass
