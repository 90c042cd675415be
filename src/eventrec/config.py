"""eventrec's settings: one typed object, read from ``EVENTREC_*`` environment variables.

Each entry point builds :class:`Settings` once with :func:`load_settings` and passes it
down; nothing reads the environment anywhere else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import unquote

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from eventrec.errors import ConfigError

ENV_PREFIX = "EVENTREC_"

_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-\[\]:]+:\d{1,5}$")
_TOPIC = re.compile(r"^[A-Za-z0-9._\-]{1,249}$")
_KEY_PREFIX = re.compile(r"^[A-Za-z0-9_.:\-]{1,64}$")

TopicName = Annotated[str, Field(pattern=_TOPIC.pattern)]

CLUSTER_SCHEMES = {"redis+cluster": False, "rediss+cluster": True}


@dataclass(frozen=True)
class ClusterAddress:
    """The seed nodes and credentials of a ``redis+cluster://`` URL."""

    nodes: tuple[tuple[str, int], ...]
    tls: bool = False
    username: str | None = None
    password: str | None = None


def is_cluster_url(url: str) -> bool:
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def parse_cluster_url(url: str) -> ClusterAddress:
    """``redis+cluster://[user:password@]host:port[,host:port...][/0]`` → its seed nodes.

    Raises ``ValueError`` naming what is wrong (a cluster has no database but 0).
    """
    scheme, _, rest = url.partition("://")
    if scheme.lower() not in CLUSTER_SCHEMES:
        raise ValueError(f"not a cluster URL (expected redis+cluster://): {url!r}")
    if "?" in rest:
        raise ValueError("a redis+cluster:// URL takes no query options")
    location, _, path = rest.partition("/")
    if path not in ("", "0"):
        raise ValueError("a Redis Cluster has only database 0")
    username = password = None
    if "@" in location:
        credentials, location = location.rsplit("@", 1)
        user, has_password, secret = credentials.partition(":")
        username = unquote(user) or None
        password = unquote(secret) if has_password else None
    nodes = []
    for node in location.split(","):
        host, _, port = node.strip().rpartition(":")
        host = host.strip("[]")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"expected host:port for each cluster node, got {node!r}")
        nodes.append((host, int(port)))
    return ClusterAddress(tuple(nodes), CLUSTER_SCHEMES[scheme.lower()], username, password)


class Settings(BaseSettings):
    """Every setting of eventrec, with its environment variable, default and meaning."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, extra="ignore", frozen=True)

    kafka_bootstrap_servers: str = Field(
        "127.0.0.1:19092",
        description="Kafka bootstrap servers, host:port[,host:port]; "
        "unset: the local broker of `eventrec services up`, on EVENTREC_LOCAL_KAFKA_PORT.",
    )
    redis_url: str = Field(
        "redis://127.0.0.1:16379/0",
        description="Redis URL: one server (redis://, rediss://, unix://), or a Redis Cluster "
        "by some of its nodes (redis+cluster://host:port[,host:port...], rediss+cluster:// "
        "with TLS); unset: the local server of `eventrec services up`, on "
        "EVENTREC_LOCAL_REDIS_PORT.",
    )
    key_prefix: str = Field(
        "eventrec",
        description="Prefix of every Redis key eventrec writes (deployments can share a server).",
    )
    consumer_group: str = Field(
        "eventrec-consumer", min_length=1, description="Kafka consumer group of the consumers."
    )
    topic_interactions: TopicName = Field(
        "interactions", description="Topic of user interactions (key: user_id)."
    )
    topic_events: TopicName = Field(
        "events", description="Compacted topic of the event catalog (key: event_id)."
    )
    topic_users: TopicName = Field(
        "users", description="Compacted topic of user profiles (key: user_id)."
    )
    topic_dlq: TopicName = Field(
        "interactions.dlq", description="Dead-letter topic: every message that failed validation."
    )
    topic_impressions: TopicName = Field(
        "impressions",
        description="Topic of served responses and the outcomes attributed to them (key: user_id).",
    )
    topic_partitions: int = Field(
        6, ge=1, le=10_000, description="Partitions per topic when `eventrec topics create` runs."
    )
    topic_replication_factor: int = Field(
        1, ge=1, le=32, description="Replication factor of the topics eventrec creates."
    )
    dlq_retention_ms: int = Field(
        30 * 24 * 3600 * 1000,
        ge=-1,
        description="Retention of the dead-letter topic in ms (-1 keeps forever); default 30 days.",
    )
    dlq_max_message_bytes: int = Field(
        1_000_000,
        ge=16_384,
        le=100_000_000,
        description="Largest dead letter the consumer sends; a bigger message is dead-lettered "
        "as a truncated copy with its original size in headers (keep it at or below the "
        "dead-letter topic's max.message.bytes).",
    )
    dlq_delivery_timeout_seconds: float = Field(
        120.0,
        ge=2,
        le=3600,
        description="How long the consumer lets Kafka take to acknowledge a dead letter "
        "before sending it again; its batch is not applied until every one is acknowledged.",
    )
    admin_token: str | None = Field(
        None,
        min_length=16,
        description="Bearer token of the admin endpoints; unset disables them (403).",
    )
    train_interval_seconds: float = Field(
        3600.0, gt=0, description="Seconds between scheduled refits of the trainer."
    )
    train_min_interactions: int = Field(
        1000,
        ge=1,
        description="The trainer fits no model below this many stored interactions "
        "(it still writes the trending list).",
    )
    train_lock_seconds: float = Field(
        60.0,
        ge=1,
        description="Expiry of the training lock; the holder renews it every third of this.",
    )
    train_n_jobs: int = Field(
        2, ge=1, le=64, description="Grid points of the trainer's search fitted in parallel."
    )
    train_search_users: int = Field(
        20_000,
        ge=100,
        description="The search's SVDs are fitted on at most this many users (validation "
        "users plus a random sample); the final refit uses every user.",
    )
    train_validation_users: int = Field(
        5000,
        ge=50,
        description="Validation users of the search and the publish gate, at most "
        "(fewer on catalogues over 20,000 events).",
    )
    train_validation_days: float = Field(
        7.0,
        gt=0,
        description="The trainer validates and gates on a time cut this many days before "
        "the latest interaction: trained on what came before, judged on what users booked, "
        "saved or rated well after it among the events then on sale.",
    )
    train_max_factor_cells: int = Field(
        640_000_000,
        ge=1_000_000,
        description="Caps factors so that factors x stored interactions stays below this "
        "(bounds the refit's time on big data).",
    )
    model_keep_versions: int = Field(
        5, ge=1, le=1000, description="Model versions kept in Redis for rollback (newest)."
    )
    trending_half_life_days: float = Field(
        7.0, gt=0, description="Half-life of bookings, saves and views in the trending list."
    )
    max_clock_skew_seconds: float = Field(
        600.0,
        gt=0,
        description="An interaction whose occurred_at is later than the consumer's clock plus "
        "this many seconds is dead-lettered (a future timestamp would distort every decay).",
    )
    consumer_metadata_max_age_ms: int = Field(
        30_000,
        ge=1_000,
        description="How often the consumer refreshes topic metadata, in ms: partitions added "
        "to a topic join the group's assignment within about this long.",
    )
    owner_claim_replicas: int = Field(
        1,
        ge=0,
        description="On a Redis Cluster, how many replicas must acknowledge a batch's new "
        "owner claims (WAIT) before its records are written, so a failover cannot lose a "
        "claim whose row survives on another master (docs/design.md). 0: do not wait. "
        "Ignored on a single server.",
    )
    owner_claim_wait_ms: int = Field(
        1000,
        ge=1,
        description="How long a batch waits for its owner claims' replicas (ms); past it "
        "the batch goes on and a warning is logged (a replica down must not stop ingest).",
    )
    consumer_loss_check_seconds: float = Field(
        5.0,
        gt=0,
        description="How often the consumer compares its partitions' stored offsets with "
        "what it applied: an offset that went back (Redis lost writes, e.g. a failover to a "
        "replica behind) is replayed from Kafka at once, even on a partition that receives "
        "nothing more.",
    )
    topic_delete_retention_ms: int = Field(
        86_400_000,
        ge=0,
        description="delete.retention.ms of the compacted topics (events, users): how long a "
        "tombstone stays for consumers that were down; default 1 day.",
    )
    dedup_window_seconds: float = Field(
        86_400.0,
        gt=0,
        description="A re-sent interaction_id is counted once within this many seconds.",
    )
    consumer_max_batch: int = Field(
        5000, ge=1, le=100_000, description="Most messages the consumer applies in one poll."
    )
    consumer_processes: int = Field(
        1,
        ge=1,
        le=64,
        description="Group members `eventrec consumer` runs as processes (about one per core).",
    )
    consumer_offset_reset: Literal["earliest", "latest", "fail"] = Field(
        "earliest",
        description="What the consumer does when its stored offset is out of range "
        "(topic recreated or truncated): resume from earliest, latest, or stop.",
    )
    search_history: int = Field(
        20, ge=0, le=1000, description="Recent search queries kept per user (0: none)."
    )
    row_compact_bytes: int = Field(
        4096,
        ge=256,
        description="A user's row is compacted each time it grows past this size doubled.",
    )
    serving_hybrid: bool = Field(
        True,
        description="Answer by the version's learned hybrid blend; false: by its "
        "collaborative scores alone (faster, as before the hybrid; experiment variants' "
        "hybrid settings are then ignored).",
    )
    http_host: str = Field("127.0.0.1", description="Address `eventrec serve` listens on.")
    http_port: int = Field(8000, ge=1, le=65535, description="Port of `eventrec serve`.")
    http_workers: int = Field(
        1, ge=1, le=64, description="Worker processes of `eventrec serve` (one core each)."
    )
    min_interactions_personal: int = Field(
        1, ge=1, description="Interactions a user needs before recommendations are personal."
    )
    hide_viewed: bool = Field(
        False, description="Also hide events the user viewed or saved (default: keep them)."
    )
    serving_reload_seconds: float = Field(
        0.25,
        gt=0,
        le=10,
        description="How often serving checks for a new model version or catalog change.",
    )
    impressions_queue_size: int = Field(
        10_000,
        ge=1,
        le=10_000_000,
        description="Impressions a serving worker holds for its background producer; "
        "past this they are dropped (and counted), never waited for.",
    )
    attribution_window_days: float = Field(
        7.0,
        gt=0,
        le=90,
        description="An interaction carrying recommendation_id counts for that response's "
        "variant and position within this many days; impression records expire with it.",
    )
    serving_reload_max_age_seconds: float = Field(
        60.0,
        gt=0,
        description="/ready fails (503) when serving's last successful check for a new model "
        "version or catalog change is older than this.",
    )
    ops_host: str = Field(
        "127.0.0.1",
        description="Address of the operations ports (metrics, dashboard): loopback unless "
        "set, since they show lag, dead-letter reasons and validation figures.",
    )
    ops_port: int = Field(
        8001,
        ge=0,
        le=65535,
        description="Operations port of `eventrec serve`: /metrics of every worker and "
        "/dashboard (0: off).",
    )
    consumer_ops_port: int = Field(
        8002, ge=0, le=65535, description="Port of `eventrec consumer`'s /metrics (0: off)."
    )
    trainer_ops_port: int = Field(
        8003, ge=0, le=65535, description="Port of `eventrec trainer`'s /metrics (0: off)."
    )
    dashboard_sample_seconds: float = Field(
        5.0,
        gt=0,
        le=300,
        description="How often the dashboard samples consumer lag, progress and dead letters.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = Field(
        "INFO", description="Log level of every eventrec process."
    )
    state_dir: Path = Field(
        Path(".local/services"),
        description="Where `eventrec services` keeps the local broker's and server's data, "
        "logs and PIDs.",
    )
    cache_dir: Path = Field(
        Path(".cache"), description="Where downloaded artifacts (Kafka's jars) are cached."
    )
    local_kafka_port: int = Field(
        19092, ge=1, le=65535, description="Port of the local Kafka broker of `services up`."
    )
    local_kafka_controller_port: int = Field(
        19093, ge=1, le=65535, description="Port of the local broker's KRaft controller."
    )
    local_redis_port: int = Field(
        16379, ge=1, le=65535, description="Port of the local Redis server of `services up`."
    )
    local_redis_cluster_port: int = Field(
        17000,
        ge=1,
        le=55529,
        description="First port of the local Redis Cluster of `services up --redis-cluster`: "
        "six nodes on this port and the five after it, cluster bus on each port + 10000.",
    )

    @field_validator("kafka_bootstrap_servers")
    @classmethod
    def _bootstrap_servers(cls, value: str) -> str:
        servers = [s.strip() for s in value.split(",") if s.strip()]
        if not servers or not all(_HOST_PORT.match(s) for s in servers):
            raise ValueError("expected host:port[,host:port...]")
        return ",".join(servers)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str) -> str:
        if re.match(r"^rediss?\+cluster://", value):
            parse_cluster_url(value)  # a ValueError names what is wrong
            return value
        if not re.match(r"^(redis|rediss|unix)://", value):
            raise ValueError(
                "expected a redis://, rediss://, unix:// or redis+cluster://host:port[,...] URL"
            )
        return value

    @field_validator("key_prefix")
    @classmethod
    def _key_prefix(cls, value: str) -> str:
        if not _KEY_PREFIX.match(value):
            raise ValueError("1-64 characters of letters, digits, _ . : -")
        return value

    @model_validator(mode="after")
    def _follow_local_ports(self) -> Settings:
        # Unset URLs follow the local ports, so moving the local stack moves every client.
        # Set past validation (frozen) to leave them out of model_fields_set: unset = managed.
        if "kafka_bootstrap_servers" not in self.model_fields_set:
            object.__setattr__(
                self, "kafka_bootstrap_servers", f"127.0.0.1:{self.local_kafka_port}"
            )
        if "redis_url" not in self.model_fields_set:
            object.__setattr__(self, "redis_url", f"redis://127.0.0.1:{self.local_redis_port}/0")
        return self

    @property
    def bootstrap_servers(self) -> list[str]:
        return self.kafka_bootstrap_servers.split(",")

    @property
    def topics(self) -> list[str]:
        return [
            self.topic_interactions,
            self.topic_events,
            self.topic_users,
            self.topic_dlq,
            self.topic_impressions,
        ]


def env_name(field: str) -> str:
    return f"{ENV_PREFIX}{field.upper()}"


def load_settings(**overrides: object) -> Settings:
    """Build the settings from the environment, failing with the variable's name."""
    try:
        return Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else "?"
            problems.append(f"{env_name(field)}: {error['msg']}")
        raise ConfigError("invalid settings: " + "; ".join(problems)) from None


def describe_settings() -> list[tuple[str, str, str]]:
    """(variable, default, description) of every setting, for docs and `eventrec settings`."""
    rows = []
    for name, field in Settings.model_fields.items():
        default = "" if field.default is None else str(field.default)
        rows.append((env_name(name), default, field.description or ""))
    return rows


SECRET_FIELDS = frozenset({"admin_token"})


def effective_settings(settings: Settings) -> list[tuple[str, str]]:
    """(variable, value in effect) of every setting; a set secret shows as ``(set)``."""
    rows = []
    for name in Settings.model_fields:
        value = getattr(settings, name)
        if value is None:
            shown = ""
        elif name in SECRET_FIELDS:
            shown = "(set)"
        else:
            shown = str(value)
        rows.append((env_name(name), shown))
    return rows
