"""A real Kafka broker, Redis server and Redis Cluster for the integration tests.

They are started by the same code as `eventrec services up` (`--redis-cluster`), on ports
of their own and under a state directory of their own, so a running demo is never
touched. Each test gets its own topic names and Redis key prefix. A test runs on the
single server unless it parametrises ``redis_backend`` (:data:`ON_SERVER_AND_CLUSTER`);
the cluster is started only when a test asks for it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eventrec.config import Settings
from eventrec.devstack import LocalRedisCluster, LocalServices
from eventrec.store.client import connect
from eventrec.topics import create_topics

REPO = Path(__file__).resolve().parents[2]
# Two checkouts can run their suites side by side with different offsets.
PORT_OFFSET = int(os.environ.get("TEST_PORT_OFFSET", "0"))
TEST_KAFKA_PORT = 29092 + PORT_OFFSET
TEST_CONTROLLER_PORT = 29093 + PORT_OFFSET
TEST_REDIS_PORT = 26379 + PORT_OFFSET
# Six nodes from here, cluster bus ports + 10000: all below 32768, out of the kernel's
# ephemeral range, where an outgoing connection may hold a port a node wants.
TEST_REDIS_CLUSTER_PORT = 21000 + PORT_OFFSET

# Runs a test once on the single Redis server and once on the local Redis Cluster.
ON_SERVER_AND_CLUSTER = pytest.mark.parametrize(
    "redis_backend", ["server", "cluster"], indirect=True
)


def service_settings() -> Settings:
    return Settings(
        state_dir=REPO / ".local" / "test-services",
        cache_dir=REPO / ".cache",
        local_kafka_port=TEST_KAFKA_PORT,
        local_kafka_controller_port=TEST_CONTROLLER_PORT,
        local_redis_port=TEST_REDIS_PORT,
        local_redis_cluster_port=TEST_REDIS_CLUSTER_PORT,
    )


@pytest.fixture(scope="session")
def services() -> Iterator[LocalServices]:
    local = LocalServices(service_settings())
    local.up()
    yield local
    local.down()


@pytest.fixture(scope="session")
def redis_cluster() -> Iterator[LocalRedisCluster]:
    """Three masters and three replicas, started on first use, stopped after the session."""
    cluster = LocalRedisCluster(service_settings())
    cluster.up()
    yield cluster
    cluster.down()


@pytest.fixture
def redis_backend(request: pytest.FixtureRequest) -> str:
    """``server`` unless a test parametrises it (:data:`ON_SERVER_AND_CLUSTER`)."""
    backend: str = getattr(request, "param", "server")
    return backend


@pytest.fixture
def redis_url(services: LocalServices, redis_backend: str, request: pytest.FixtureRequest) -> str:
    if redis_backend == "cluster":
        cluster: LocalRedisCluster = request.getfixturevalue("redis_cluster")
        cluster.wait_ready()  # a failover test may have left a node rejoining
        return cluster.url
    return services.redis_url


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
        # No operations ports unless a test asks: fixed defaults would collide.
        "ops_port": 0,
        "consumer_ops_port": 0,
        "trainer_ops_port": 0,
        "topic_impressions": f"{tag}.impressions",
        "state_dir": services.state_dir,
        "cache_dir": services.cache_dir,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture
def settings(services: LocalServices, redis_url: str) -> Settings:
    """Settings with this test's own topics (created) and Redis key prefix."""
    test_settings = unique_settings(services, redis_url=redis_url)
    create_topics(test_settings)
    return test_settings


@pytest.fixture
def redis_client(settings: Settings) -> Iterator[Any]:
    """A client of the test's Redis (server or cluster); deletes the test's keys after it."""
    client = connect(settings.redis_url)
    yield client
    # On a cluster, SCAN visits every master and DEL splits its keys by slot.
    keys = list(client.scan_iter(match=f"{settings.key_prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()
