"""The five Kafka topics eventrec uses: creating them, and checking that they exist."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kafka import KafkaAdminClient
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from eventrec.config import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TopicSpec:
    name: str
    partitions: int
    config: dict[str, str]


def topic_specs(settings: Settings) -> list[TopicSpec]:
    """Interactions keep a week; catalog and profiles are compacted; dead letters stay long."""
    partitions = settings.topic_partitions
    compacted = {
        "cleanup.policy": "compact",
        "min.compaction.lag.ms": "60000",
        # A tombstone outlives a consumer's downtime, so a deletion is never missed.
        "delete.retention.ms": str(settings.topic_delete_retention_ms),
    }
    return [
        TopicSpec(settings.topic_interactions, partitions, {"retention.ms": str(7 * 86_400_000)}),
        TopicSpec(settings.topic_events, partitions, dict(compacted)),
        TopicSpec(settings.topic_users, partitions, dict(compacted)),
        TopicSpec(settings.topic_dlq, partitions, {"retention.ms": str(settings.dlq_retention_ms)}),
        # Kept a day past the attribution window: a consumer down for a day still attributes.
        TopicSpec(
            settings.topic_impressions,
            partitions,
            {"retention.ms": str(int((settings.attribution_window_days + 1) * 86_400_000))},
        ),
    ]


def admin_client(settings: Settings) -> KafkaAdminClient:
    return KafkaAdminClient(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="eventrec-admin",
        request_timeout_ms=15000,
    )


def create_topics(settings: Settings) -> dict[str, str]:
    """Create the topics that do not exist yet; returns ``{topic: "created" | "exists"}``."""
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
        outcome: dict[str, str] = {}
        missing = []
        for spec in topic_specs(settings):
            if spec.name in existing:
                outcome[spec.name] = "exists"
            else:
                missing.append(
                    NewTopic(
                        spec.name,
                        spec.partitions,
                        settings.topic_replication_factor,
                        topic_configs=spec.config,
                    )
                )
        for topic in missing:
            try:
                admin.create_topics([topic])
                outcome[topic.name] = "created"
            except TopicAlreadyExistsError:  # another process created it in the meantime
                outcome[topic.name] = "exists"
        return outcome
    finally:
        admin.close()


def missing_topics(settings: Settings, wanted: list[str]) -> list[str]:
    """The topics of ``wanted`` that the cluster does not have."""
    admin = admin_client(settings)
    try:
        existing = set(admin.list_topics())
    finally:
        admin.close()
    return [topic for topic in wanted if topic not in existing]
