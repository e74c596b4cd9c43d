"""`tradehall cluster ...`: the processes and the view of a cluster whose shards' logs are in NATS JetStream.

`replica` runs one replica of one shard (a standby that takes over when the leader's lease lapses);
see docs/cluster.md for the model.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import nats.errors
import typer

from tradehall.cli.common import (
    EXIT_CHECK_FAILED,
    EXIT_REFUSED,
    EXIT_SERVER,
    EXIT_UNREACHABLE,
    JSON_OPTION,
    emit,
    err_console,
    fail,
    table,
)
from tradehall.service.cluster.replica import (
    KEEP_MESSAGES,
    ReplicaConfig,
    id_base_from_settings,
    run_replica,
)
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
    keep_messages: int = typer.Option(
        KEEP_MESSAGES,
        "--keep-messages",
        envvar="TRADEHALL_CLUSTER_KEEP_MESSAGES",
        help="Stream messages kept before the newest snapshot's resume point (older ones are purged); "
        "-1: never purge.",
    ),
    standby_only: bool = typer.Option(False, "--standby-only", help="Follow the stream, never lead."),
    id_base: int | None = typer.Option(
        None, "--id-base", help="The shard's order/trade id range; default: from the shard map settings."
    ),
    http: str = typer.Option(
        "", "--http", envvar="TRADEHALL_CLUSTER_HTTP", help="HOST:PORT serving /health, /ready and /metrics."
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
        keep_messages=keep_messages if keep_messages >= 0 else None,
        can_lead=not standby_only,
        id_base=id_base if id_base is not None else id_base_from_settings(shard),
        ops_listen=http,
    )
    if replica_id is not None:
        config = dataclasses.replace(config, replica_id=replica_id)
    arm_lifeline()
    asyncio.run(run_replica(config))


def _render_report(reports: list[dict[str, Any]]) -> None:
    table(
        "Shards",
        ["shard", "leader", "standbys", "stream seq", "lease holder", "lease age s", "lease ttl s"],
        [
            [
                report["shard"], report["leader"] or "(none)", ", ".join(report["standbys"]) or "(none)",
                report["stream_last_seq"], report["lease_holder"] or "(free)",
                f"{report['lease_age_seconds']:.1f}", f"{report['lease_ttl_seconds']:.1f}",
            ]
            for report in reports
        ],
    )
    table(
        "Replicas",
        ["shard", "replica", "role", "applied seq", "stream seq", "lag", "takeovers", "pid"],
        [
            [report["shard"], replica["replica_id"], replica["role"], replica["applied_seq"],
             replica["stream_seq"], replica["lag"], replica["takeovers"], replica["pid"]]
            for report in reports for replica in report["replicas"]
        ],
    )


@cluster_app.command()
def status(
    nats_url: str = typer.Option(
        "nats://127.0.0.1:4222", "--nats", envvar="TRADEHALL_NATS_URL", help="NATS URL(s), comma-separated."
    ),
    prefix: str = typer.Option("tradehall", "--prefix", envvar="TRADEHALL_CLUSTER_PREFIX"),
    shard: list[str] = typer.Option([], "--shard", help="Only this shard (repeatable); default: all."),
    timeout: float = typer.Option(0.5, "--timeout", help="Seconds to wait for the replicas' answers."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Every shard: its leader and standbys, stream end, each replica's applied seq and lag, the lease's
    holder and age. Exit 1 when a shard has no leader, 4 when NATS cannot be reached."""
    from tradehall.service.cluster.connection import server_urls
    from tradehall.service.cluster.report import cluster_report

    try:
        servers = server_urls(nats_url)
        reports = asyncio.run(cluster_report(servers, prefix, list(shard) or None, timeout=timeout))
    except ValueError as exc:
        fail(str(exc), EXIT_REFUSED)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        fail(f"cannot reach NATS at {nats_url}: {exc!r}", EXIT_UNREACHABLE)
    data = [report.as_dict() for report in reports]
    if not reports and not as_json:
        err_console.print(f"no shard under prefix {prefix!r}")
        raise typer.Exit(EXIT_CHECK_FAILED)
    emit(data, as_json, _render_report)
    if any(not report.leader for report in reports):
        raise typer.Exit(EXIT_CHECK_FAILED)


def _transfer_rows(records: list[dict[str, Any]]) -> None:
    table(
        "Transfers",
        ["transfer", "account", "amount", "currency", "from", "to", "state", "reason", "error"],
        [
            [r["transfer_id"], r["account_id"], r["amount"], r["currency"], r["from_shard"], r["to_shard"],
             r["state"], r["reason"], r["error"]]
            for r in records
        ],
    )


def _run_transfers(action: Any) -> list[dict[str, Any]]:
    """Runs `action(coordinator)` against the cluster of the settings (shard map, NATS, prefix)."""
    import msgspec

    from tradehall.domain.errors import TradehallError
    from tradehall.service.cluster.gateway import cluster_shard_map, open_transfers
    from tradehall.service.cluster.shards import ShardMapError
    from tradehall.service.runner import RunnerError
    from tradehall.service.settings import Settings

    settings = Settings()
    try:
        shard_map = cluster_shard_map(settings)
    except ShardMapError as exc:
        fail(f"shard map: {exc}", EXIT_REFUSED)
    if shard_map is None:
        fail("no shard map: set TRADEHALL_CLUSTER_SHARDS (or TRADEHALL_CLUSTER_SHARDS_FILE)", EXIT_REFUSED)

    async def run() -> list[dict[str, Any]]:
        coordinator, nc = await open_transfers(settings, shard_map)
        try:
            records = await action(coordinator)
        finally:
            await nc.close()
        return [msgspec.to_builtins(record) for record in records]

    try:
        return asyncio.run(run())
    except TradehallError as exc:
        fail(f"{exc.code.value}: {exc.detail}", EXIT_REFUSED)
    except RunnerError as exc:  # a shard had no leader in time: the transfer goes on later
        fail(str(exc), EXIT_SERVER)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        fail(f"cannot reach NATS at {settings.nats_url}: {exc!r}", EXIT_UNREACHABLE)


@cluster_app.command()
def transfer(
    transfer_id: str = typer.Argument(..., help="Your id for it: a repeat with it moves nothing more."),
    account_id: str = typer.Argument(...),
    amount: str = typer.Argument(..., help="A positive decimal in the currency's places."),
    from_shard: str = typer.Option(..., "--from", help="The shard the collateral leaves."),
    to_shard: str = typer.Option(..., "--to", help="The shard it goes to."),
    currency: str | None = typer.Option(None, "--currency", help="Default: the account's."),
    as_json: bool = JSON_OPTION,
) -> None:
    """Move an account's collateral between shards (docs/cluster.md, "Accounts across shards"), through
    both shards' logs, once. Uses the settings' shard map, TRADEHALL_NATS_URL and TRADEHALL_CLUSTER_PREFIX.
    Exit 1 when it ended `failed` or `refunded`, 3 when a shard had no leader (it goes on later)."""

    async def action(coordinator: Any) -> list[Any]:
        return [await coordinator.transfer(transfer_id, account_id, amount, from_shard, to_shard, currency)]

    records = _run_transfers(action)
    emit(records[0] if as_json else records, as_json, _transfer_rows)
    if records[0]["state"] != "completed":
        raise typer.Exit(EXIT_CHECK_FAILED)


@cluster_app.command("recover-transfers")
def recover_transfers(as_json: bool = JSON_OPTION) -> None:
    """Drive every unfinished transfer to its end (gateways do it every 30 s too); lists those it ended."""

    async def action(coordinator: Any) -> list[Any]:
        return list(await coordinator.recover())

    emit(_run_transfers(action), as_json, _transfer_rows)


@cluster_app.command()
def projector(
    shards: list[str] = typer.Option(
        [], "--shard", help="A shard to project (repeat it); default: every shard of the shard map."
    ),
) -> None:
    """Project the shards' records into the PostgreSQL read models until SIGTERM (one process per shard).

    Reads the shard map, TRADEHALL_NATS_URL, TRADEHALL_CLUSTER_PREFIX and TRADEHALL_DATABASE_URL like a
    gateway; resumes each shard after the seq its cursor stored, so a restart projects nothing twice."""
    from tradehall.service.cluster.gateway import cluster_shard_map
    from tradehall.service.cluster.projection import ProjectionBusyError, run_projections
    from tradehall.service.cluster.shards import ShardMapError
    from tradehall.service.settings import Settings
    from tradehall.service.supervisor import stop_on_signals
    from tradehall.store import upgrade

    settings = Settings()
    try:
        shard_map = cluster_shard_map(settings)
    except ShardMapError as exc:
        fail(f"shard map: {exc}", EXIT_REFUSED)
    if shard_map is None:
        fail("no shard map: set TRADEHALL_CLUSTER_SHARDS (or TRADEHALL_CLUSTER_SHARDS_FILE)", EXIT_REFUSED)
    unknown = [shard for shard in shards if shard not in shard_map.shards]
    if unknown:
        fail(f"shard {unknown[0]!r} is not one of {shard_map.names}", EXIT_REFUSED)
    arm_lifeline()
    upgrade(settings.sqlalchemy_url)

    async def run() -> None:
        await run_projections(settings, shard_map, shards, stop_on_signals())

    try:
        asyncio.run(run())
    except ProjectionBusyError as exc:
        fail(str(exc), EXIT_REFUSED)
    except (OSError, TimeoutError, nats.errors.Error) as exc:
        fail(f"cannot reach NATS at {settings.nats_url}: {exc!r}", EXIT_UNREACHABLE)
