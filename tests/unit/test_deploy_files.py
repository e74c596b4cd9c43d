"""The deployment files (deploy/) say what the code accepts: every replica command line of the compose
file and of the systemd unit parses into the intended replica configuration, and the units are valid."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tradehall.service.cluster.replica import ReplicaConfig, parse_args
from tradehall.service.cluster.shards import ShardMap

DEPLOY = Path(__file__).parents[2] / "deploy"
SERVERS = "nats://nats1:4222,nats://nats2:4222,nats://nats3:4222"


def env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def parsed(argv: list[str], env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> ReplicaConfig:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert argv[:3] == ["python", "-m", "tradehall.service.cluster.replica"] or argv[1:3] == [
        "-m", "tradehall.service.cluster.replica"
    ], argv
    return parse_args(argv[3:])


def test_compose_replicas(monkeypatch: pytest.MonkeyPatch) -> None:
    compose: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    services = compose["services"]
    assert {"nats1", "nats2", "nats3", "gateway", "postgres"} <= set(services)
    replicas = {name: service for name, service in services.items() if name.startswith("replica-")}
    configs = [parsed(each["command"], each["environment"], monkeypatch) for each in replicas.values()]
    assert sorted((config.shard, config.replica_id) for config in configs) == [
        ("A", "a1"), ("A", "a2"), ("B", "b1"), ("B", "b2")
    ]
    for config in configs:
        assert (config.nats_url, config.replicas, config.ops_listen, config.lease_ttl) == (
            SERVERS, 3, "0.0.0.0:9464", 3.0
        )
    shard_map = ShardMap.parse(services["gateway"]["environment"]["TRADEHALL_CLUSTER_SHARDS"])
    assert {config.shard for config in configs} == set(shard_map.names)
    for config in configs:  # the replicas and the gateway share one map: ids of shards never meet
        assert config.id_base == shard_map.id_base(config.shard)
    for number in "123":
        assert services[f"nats{number}"]["environment"]["NATS_SERVER_NAME"] == f"nats{number}"
    # the projection feeds the database the gateway reads, from the same shards
    projector, gateway = services["projector"], services["gateway"]
    assert projector["command"] == ["tradehall", "cluster", "projector"]
    for name in ("TRADEHALL_CLUSTER_SHARDS", "TRADEHALL_DATABASE_URL", "TRADEHALL_NATS_URL"):
        assert projector["environment"][name] == gateway["environment"][name], name


def test_systemd_replica_unit(monkeypatch: pytest.MonkeyPatch) -> None:
    unit = (DEPLOY / "systemd" / "tradehall-replica@.service").read_text()
    [exec_start] = [line.split("=", 1)[1] for line in unit.splitlines() if line.startswith("ExecStart=")]
    argv = shlex.split(exec_start.replace("%i", "A").replace("%H", "host1"))
    config = parsed(argv, env_file(DEPLOY / "systemd" / "cluster.env"), monkeypatch)
    assert (config.shard, config.replica_id, config.nats_url, config.replicas, config.ops_listen) == (
        "A", "host1-A", SERVERS, 3, "0.0.0.0:9464"
    )
    assert config.id_base == 0 and parse_args(["--shard", "B"]).id_base == 1 << 40


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
@pytest.mark.parametrize(
    "name",
    [
        "tradehall-replica@.service",
        "tradehall-gateway.service",
        "tradehall-nats.service",
        "tradehall-projector@.service",
    ],
)
def test_systemd_units_verify(tmp_path: Path, name: str) -> None:
    # the programs the units start are where a real install puts them; here, stand-ins that exist
    text = (DEPLOY / "systemd" / name).read_text()
    for program in ("/opt/tradehall/venv/bin/python", "/opt/tradehall/venv/bin/tradehall",
                    "/usr/sbin/nats-server"):
        text = text.replace(program, sys.executable)
    target = tmp_path / (name.replace("@.", "@A.") if "@" in name else name)
    target.write_text(text)
    argv = ["systemd-analyze", "verify", str(target)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    problems = [line for line in done.stderr.splitlines() if str(target.name).split("@")[0] in line
                and "EnvironmentFile" not in line and "User" not in line]
    assert not problems, done.stderr
