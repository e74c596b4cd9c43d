"""`tradehall cluster ...`: the processes and the view of a cluster whose shards' logs are in NATS JetStream.

`replica` runs one replica of one shard (a standby that takes over when the leader's lease lapses);
see docs/cluster.md for the model.
"""

from __future__ import annotations

import asyncio
import dataclasses

import typer

from tradehall.service.cluster.replica import ReplicaConfig, id_base_from_settings, run_replica
from tradehall.service.supervisor import arm_lifeline

cluster_app = typer.Typer(
    name="cluster", help="Shards whose command logs live in NATS JetStream.", no_args_is_help=True
)


@cluster_app.command()
def replica(
    shard: str = typer.Option(..., "--shard", help="The shard's name (letters, digits, - and _)."),
    nats_url: str = typer.Option("nats://127.0.0.1:4222", "--nats", envvar="TRADEHALL_NATS_URL"),
    prefix: str = typer.Option("tradehall", "--prefix", envvar="TRADEHALL_CLUSTER_PREFIX"),
    replica_id: str | None = typer.Option(None, "--replica-id", help="Default: <hostname>-<pid>."),
    replicas: int = typer.Option(
        1, "--replicas", envvar="TRADEHALL_CLUSTER_REPLICAS", help="Copies of the stream (3 in production)."
    ),
    lease_ttl: float = typer.Option(
        3.0, "--lease-ttl", envvar="TRADEHALL_CLUSTER_LEASE_TTL_SECONDS", help="The leader lease's TTL."
    ),
    append_timeout: float = typer.Option(5.0, "--append-timeout"),
    snapshot_every: int = typer.Option(100_000, "--snapshot-every", help="Commands between snapshots."),
    snapshot_every_seconds: float = typer.Option(300.0, "--snapshot-every-seconds"),
    standby_only: bool = typer.Option(False, "--standby-only", help="Follow the stream, never lead."),
    id_base: int | None = typer.Option(
        None, "--id-base", help="The shard's order/trade id range; default: from the shard map settings."
    ),
) -> None:
    """Run one replica of a shard until SIGTERM: it follows the stream and leads when the lease is free."""
    config = ReplicaConfig(
        shard=shard,
        nats_url=nats_url,
        prefix=prefix,
        replicas=replicas,
        lease_ttl=lease_ttl,
        append_timeout=append_timeout,
        snapshot_every_commands=snapshot_every,
        snapshot_every_seconds=snapshot_every_seconds,
        can_lead=not standby_only,
        id_base=id_base if id_base is not None else id_base_from_settings(shard),
    )
    if replica_id is not None:
        config = dataclasses.replace(config, replica_id=replica_id)
    arm_lifeline()
    asyncio.run(run_replica(config))
