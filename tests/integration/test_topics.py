"""`eventrec topics create` against the real broker: idempotent, right partitions and configs."""

from __future__ import annotations

import pytest
from kafka.admin import ConfigResource, ConfigResourceType

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.topics import admin_client, create_topics, missing_topics
from tests.integration.conftest import unique_settings

pytestmark = pytest.mark.integration


def topic_config(settings: Settings, topic: str) -> dict[str, str]:
    admin = admin_client(settings)
    try:
        response = admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topic)])
    finally:
        admin.close()
    configs = response["topic"][topic]
    return {name: entry["value"] for name, entry in configs.items()}


def test_create_is_idempotent_with_partitions_and_policies(services: LocalServices) -> None:
    settings = unique_settings(services, topic_partitions=3)
    assert missing_topics(settings, settings.topics) == settings.topics
    first = create_topics(settings)
    assert first == dict.fromkeys(settings.topics, "created")
    assert create_topics(settings) == dict.fromkeys(settings.topics, "exists")
    assert missing_topics(settings, settings.topics) == []

    admin = admin_client(settings)
    try:
        described = {t["name"]: t for t in admin.describe_topics(settings.topics)}
    finally:
        admin.close()
    assert {name: len(t["partitions"]) for name, t in described.items()} == dict.fromkeys(
        settings.topics, 3
    )
    assert topic_config(settings, settings.topic_events)["cleanup.policy"] == "compact"
    assert topic_config(settings, settings.topic_users)["cleanup.policy"] == "compact"
    assert "cleanup.policy" not in topic_config(settings, settings.topic_interactions)
    assert topic_config(settings, settings.topic_dlq)["retention.ms"] == str(
        settings.dlq_retention_ms
    )


def test_missing_topics_are_named(settings: Settings) -> None:
    assert missing_topics(settings, [settings.topic_events, "no-such-topic-here"]) == [
        "no-such-topic-here"
    ]
