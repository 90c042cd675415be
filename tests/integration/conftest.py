"""A real Kafka broker and Redis server for the integration tests.

They are started by the same code as `eventrec services up`, on ports of their own and
under a state directory of their own, so a running demo is never touched. Each test gets
its own topic names and Redis key prefix.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.topics import create_topics

REPO = Path(__file__).resolve().parents[2]
# Two checkouts can run their suites side by side with different offsets.
PORT_OFFSET = int(os.environ.get("TEST_PORT_OFFSET", "0"))
TEST_KAFKA_PORT = 29092 + PORT_OFFSET
TEST_CONTROLLER_PORT = 29093 + PORT_OFFSET
TEST_REDIS_PORT = 26379 + PORT_OFFSET


def service_settings() -> Settings:
    return Settings(
        state_dir=REPO / ".local" / "test-services",
        cache_dir=REPO / ".cache",
        local_kafka_port=TEST_KAFKA_PORT,
        local_kafka_controller_port=TEST_CONTROLLER_PORT,
        local_redis_port=TEST_REDIS_PORT,
    )


@pytest.fixture(scope="session")
def services() -> Iterator[LocalServices]:
    local = LocalServices(service_settings())
    local.up()
    yield local
    local.down()


def unique_settings(services: LocalServices, **overrides: object) -> Settings:
    tag = uuid.uuid4().hex[:10]
    values: dict[str, object] = {
        "kafka_bootstrap_servers": services.kafka_address,
        "redis_url": services.redis_url,
        "key_prefix": f"test-{tag}",
        "consumer_group": f"test-{tag}",
        "topic_interactions": f"{tag}.interactions",
        "topic_events": f"{tag}.events",
        "topic_users": f"{tag}.users",
        "topic_dlq": f"{tag}.interactions.dlq",
        "state_dir": services.state_dir,
        "cache_dir": services.cache_dir,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(services: LocalServices) -> Settings:
    """Settings with this test's own topics (created) and Redis key prefix."""
    test_settings = unique_settings(services)
    create_topics(test_settings)
    return test_settings


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(settings.redis_url)
    yield client
    keys = list(client.scan_iter(match=f"{settings.key_prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()
