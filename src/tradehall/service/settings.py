"""Runtime configuration: environment variables prefixed TRADEHALL_ (and an optional tradehall.toml).

Validated once at the edge; components receive the pieces they need in their constructors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

FsyncPolicy = Literal["always", "batch", "none"]
BusBackend = Literal["inproc", "redis", "nats", "kafka"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRADEHALL_", toml_file="tradehall.toml", extra="ignore")

    data_dir: Path = Path("./var")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; default: SQLite file in the data dir."
    )
    jwt_secret: str = "change-me-in-production"
    jwt_expiry_seconds: int = 3600
    admin_user: str = "admin"
    admin_password: str = "admin"
    allow_registration: bool = True
    allow_self_funding: bool = True
    local: bool = Field(
        default=False,
        description="A local or demo run: `tradehall serve` then starts with the default JWT secret or "
        "admin password (refused otherwise).",
    )
    password_hash_workers: int = Field(default=2, description="Threads that run argon2 (logins, users).")
    password_hash_queue: int = Field(
        default=8, description="Password checks that may wait for a thread; beyond: 503 overloaded."
    )
    password_hash_memory_kib: int = Field(
        default=65536,
        ge=64,
        description="argon2 memory of each new password hash, KiB (a check reads the stored hash's own).",
    )
    password_hash_time_cost: int = Field(
        default=3, ge=1, description="argon2 passes of each new password hash (tests use 1)."
    )
    login_tarpit_seconds: float = Field(
        default=2.0,
        description="A throttled (429) or overloaded (503) login is answered after a pause of up to this "
        "long, so a client that ignores Retry-After cannot flood the server (0 = answer at once).",
    )

    strategies_dir: Path | None = Field(
        default=None,
        description="A directory of Python files whose Strategy subclasses are registered beside the "
        "built-ins and the `tradehall.strategies` entry points (GET /strategies lists them).",
    )
    max_sessions_per_user: int = Field(
        default=20,
        ge=1,
        description="Running or paused trading sessions a user may have at once (each is a task of the "
        "server); one more is 409 `conflict`.",
    )

    backtest_workers: int = Field(
        default=1, ge=1, description="Backtests run at once, each in its own process; the rest wait."
    )
    backtest_data_dirs: list[Path] = Field(
        default_factory=list,
        description="Directories whose files `POST /backtests` may read as `data.path` (relative paths "
        "are taken from the first); default: the data dir's `backtest-data`.",
    )

    rate_limit_per_second: float = Field(
        default=200.0, description="Sustained requests per second per user, all keys together (0 = no limit)."
    )
    rate_limit_burst: int = 400
    max_body_bytes: int = 64 * 1024
    http_header_timeout_seconds: float = Field(
        default=10.0,
        description="A request head (request line and headers) must arrive within this many seconds of "
        "its first byte (or of the connection's opening), else the connection is closed (slowloris).",
    )
    http_body_timeout_seconds: float = Field(
        default=30.0, description="A request body must arrive within this many seconds after its head."
    )
    http_keep_alive_seconds: int = Field(default=5, description="Idle keep-alive connections close after.")
    http_max_connections: int = Field(
        default=4096, description="Concurrent connections and requests beyond which requests get 503."
    )
    ws_max_subscriptions: int = 50
    ws_send_queue: int = 1000
    ws_send_queue_bytes: int = Field(
        default=1024 * 1024, description="Bytes waiting for one WebSocket client; beyond: closed with 1013."
    )
    ws_send_timeout_seconds: float = Field(
        default=10.0, description="Longest one WebSocket send may wait on a client that does not read."
    )
    ws_max_message_bytes: int = 16 * 1024
    ws_max_channels_per_message: int = 100
    ws_max_connections_per_ip: int = 100
    ws_max_connections_per_user: int = 20
    ws_auth_timeout_seconds: float = Field(
        default=10.0,
        description="A socket that must authenticate before anything else (/alpaca/stream) and has not "
        "within this many seconds is closed with 1008.",
    )
    ws_connects_per_second_per_ip: float = Field(
        default=10.0,
        description="New WebSocket connections one address may open per second (burst: twice that); "
        "beyond, the handshake is refused (HTTP 403) before any work (0 = no limit).",
    )

    fsync: FsyncPolicy = "batch"
    journal_segment_bytes: int = 64 * 1024 * 1024
    group_commit_max_batch: int = 1024
    group_commit_max_wait_ms: float = 2.0
    snapshot_every_commands: int = 100_000
    snapshot_every_seconds: float = 300.0
    snapshot_retention: int = 2
    delete_archived_segments: bool = False

    bus: BusBackend = "inproc"
    redis_url: str = "redis://127.0.0.1:6379/0"
    nats_url: str = "nats://127.0.0.1:4222"
    kafka_bootstrap: str = "127.0.0.1:9092"
    bus_backlog_limit: int = 100_000
    bus_prefix: str = Field(
        default="tradehall",
        description="Namespace of the bus's streams, subjects and topics ([A-Za-z0-9_-]).",
    )

    cluster_shards: str | None = Field(
        default=None,
        description="A cluster's shard map, `A=BTC-USD,ETH-USD;B=SOL-USD` (docs/cluster.md): this gateway "
        "sends each command to the leader of its market's shard over NATS (`nats_url`); none: one machine.",
    )
    cluster_shards_file: Path | None = Field(
        default=None, description="The shard map as a TOML file ([shards] name = [markets], home_shard)."
    )
    cluster_home_shard: str | None = Field(
        default=None, description="The shard of account-level commands (deposits...); default: the first."
    )
    cluster_prefix: str = Field(
        default="tradehall", description="The cluster's NATS names' prefix (streams, subjects, buckets)."
    )
    cluster_request_timeout_seconds: float = Field(
        default=2.0, gt=0, description="How long one command waits for its shard's leader to answer."
    )
    cluster_retry_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How long a command is retried (same command, same client_order_id) while its shard "
        "has no leader (a takeover); then 503 `overloaded` with Retry-After.",
    )

    ws_source: Literal["local", "bus"] = Field(
        default="local",
        description="Where /ws takes market events from: this process's engine (local) or the bus "
        "(a gateway process serving clients of an engine elsewhere; needs bus != inproc).",
    )
    engine_url: str | None = Field(
        default=None,
        description="Base URL of the engine's API, for book snapshots of a ws_source=bus gateway; "
        "none: this process's engine.",
    )

    quote_max_age_seconds: float = 10.0
    max_open_orders: int = 1_000
    assessment_tiers_file: Path | None = Field(
        default=None,
        description="TOML file of assessment tiers ([tiers.<name>] tables with the fields of GET /tiers); "
        "none: the shipped examples.",
    )
    clock_tick_seconds: float = Field(
        default=1.0,
        description="How often the runner sends AdvanceTime (expiries, daily resets, funding); 0 disables.",
    )
    clock: Literal["system", "manual"] = Field(
        default="system",
        description="The sequencer's time source: the wall clock, or (tests and demos, never production) "
        "a manual clock only `POST /admin/clock` moves; `tradehall serve` refuses `manual` without --local.",
    )
    coingecko_api_key: str | None = None
    coingecko_pro: bool = False
    coinmarketcap_api_key: str | None = None
    marketdata_config: Path | None = Field(
        default=None,
        description="TOML/JSON file of feeds and market routes (tradehall.marketdata.config); "
        "none: the simulated demo feed.",
    )

    monitor_rules_file: Path | None = Field(
        default=None,
        description='TOML file of alert rules (docs/operations.md "Alert rules"), checked at start; '
        "none: the built-in rules.",
    )
    monitor_interval_seconds: float = Field(
        default=5.0, ge=0, description="How often the monitor evaluates the alert rules (0: never)."
    )
    monitor_critical_not_ready: bool = Field(
        default=False,
        description="CRITICAL health (a critical alert firing) makes /ready answer 503; by default the "
        "`monitor` check only reports it, so a load balancer does not drop a process over e.g. a feed.",
    )
    alert_webhooks: list[str] = Field(
        default_factory=list,
        description="URLs every alert change is POSTed to as JSON (env: a JSON list).",
    )
    alert_webhook_timeout_seconds: float = Field(default=5.0, gt=0, description="One webhook POST's limit.")
    alert_webhook_retries: int = Field(default=3, ge=0, description="Retries of a failed webhook POST.")
    alert_webhook_backoff_seconds: float = Field(
        default=1.0, ge=0, description="Wait before the first retry; doubled for each next one."
    )
    alert_webhook_queue: int = Field(
        default=1000, ge=1, description="Alert changes waiting for the webhooks; beyond, dropped and counted."
    )

    def default_secrets(self) -> list[str]:
        """The secrets still at their shipped defaults (by variable name): fine only for a local run."""
        unsafe = []
        for field, variable in (
            ("jwt_secret", "TRADEHALL_JWT_SECRET"),
            ("admin_password", "TRADEHALL_ADMIN_PASSWORD"),
        ):
            if getattr(self, field) == type(self).model_fields[field].default:
                unsafe.append(variable)
        return unsafe

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{(self.data_dir / 'tradehall.sqlite3').resolve()}"

    @property
    def journal_dir(self) -> Path:
        return self.data_dir / "journal"

    @property
    def snapshot_dir(self) -> Path:
        return self.data_dir / "snapshots"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))
