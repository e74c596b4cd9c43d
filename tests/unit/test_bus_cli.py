from __future__ import annotations

from typer.testing import CliRunner

from tradehall.cli.main import app

runner = CliRunner()


def test_events_tail_refuses_an_unknown_backend() -> None:
    result = runner.invoke(app, ["events", "tail", "--topic", "trades.BTC-PERP", "--backend", "rabbit"])
    assert result.exit_code == 2
    assert "unknown backend 'rabbit'" in result.output


def test_events_tail_refuses_an_invalid_topic_pattern() -> None:
    result = runner.invoke(app, ["events", "tail", "--topic", "trades..x", "--backend", "redis"])
    assert result.exit_code == 2
    assert "empty token" in result.output


def test_events_tail_reports_an_unreachable_broker(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("TRADEHALL_REDIS_URL", "redis://127.0.0.1:1/0")
    result = runner.invoke(app, ["events", "tail", "--topic", "trades.BTC-PERP", "--backend", "redis"])
    assert result.exit_code == 4
    assert "bus unavailable" in result.output


def test_create_bus_builds_the_configured_backend() -> None:
    from tradehall.bus import InProcessBus, create_bus
    from tradehall.bus.kafka import KafkaBus
    from tradehall.bus.nats import NatsJetStreamBus
    from tradehall.bus.redis_streams import RedisStreamsBus
    from tradehall.service.settings import Settings

    assert isinstance(create_bus(Settings(bus="inproc")), InProcessBus)
    assert isinstance(create_bus(Settings(bus="redis")), RedisStreamsBus)
    assert isinstance(create_bus(Settings(bus="nats")), NatsJetStreamBus)
    assert isinstance(create_bus(Settings(bus="kafka")), KafkaBus)
