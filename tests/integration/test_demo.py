"""`make demo` beside the test stack, on moved ports: each sees only its own data."""

from __future__ import annotations

import os
import subprocess
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import redis
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition

from eventrec.config import Settings
from eventrec.demo import model_sequence, wait_model
from eventrec.devstack import LocalServices
from eventrec.store import Store, connect
from eventrec.store.versions import activate_version, write_version
from tests.integration.conftest import PORT_OFFSET, REPO, unique_settings
from tests.integration.ingest_helpers import applied_offsets
from tests.integration.test_serve_workers import free_port

pytestmark = pytest.mark.integration

# Apart from the test stack's (29092, 26379) and test_local_services' (29192, 26479)
# ports at every offset the engineers use (0-400).
DEMO_KAFKA_PORT = 29692 + PORT_OFFSET
DEMO_REDIS_PORT = 26979 + PORT_OFFSET
DEMO_INTERACTIONS = 20_000


def tiny_version(store: Store, interactions: int) -> str:
    """A stored version with arrays of the right names and kinds (not a fitted model)."""
    arrays = {
        "item_factors": np.ones((2, 2), dtype=np.float32),
        "singular_values": np.ones(2, dtype=np.float32),
        "column_scale": np.ones(2, dtype=np.float32),
        "popularity": np.ones(2, dtype=np.int64),
        "trending": np.ones(2, dtype=np.float32),
        "content_coef": np.ones((3, 2), dtype=np.float32),
        "event_ids": ["e-1", "e-2"],
    }
    return write_version(store, arrays, {"data": {"interactions": interactions}})


def test_a_second_demo_waits_for_a_version_newer_than_the_first(settings: Settings) -> None:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    try:
        first = tiny_version(store, 500)
        activate_version(store, first)
        before = model_sequence(settings)
        assert before == 1
        with pytest.raises(SystemExit, match="no model version within 2s"):
            wait_model(settings, 1, timeout=2, newer_than=before)

        def publish_later() -> None:
            time.sleep(1.5)
            activate_version(store, tiny_version(store, 600))

        publisher = threading.Thread(target=publish_later)
        publisher.start()
        metadata = wait_model(settings, 1, timeout=30, newer_than=before)
        publisher.join()
        assert (metadata["version"], metadata["sequence"]) == ("v000002", 2)
    finally:
        for key in store.client.scan_iter(match=f"{settings.key_prefix}:*"):
            store.client.delete(key)
        store.client.close()


def topics_of(bootstrap: str) -> set[str]:
    admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def end_offsets(bootstrap: str, topic: str) -> int:
    consumer = KafkaConsumer(bootstrap_servers=bootstrap)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return sum(int(offset) for offset in consumer.end_offsets(partitions).values())
    finally:
        consumer.close()


def test_a_demo_sized_stack_on_moved_ports_beside_the_test_stack(
    services: LocalServices, tmp_path: Path
) -> None:
    # The test stack holds data of its own, which the demo must neither see nor touch.
    neighbour = unique_settings(services)
    neighbour_redis = redis.Redis.from_url(services.redis_url)
    neighbour_redis.set(f"{neighbour.key_prefix}:marker", b"test stack")
    http_port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTREC_")}
    env.update(
        {
            "DEMO_DIR": str(tmp_path / "demo"),
            "DEMO_INTERACTIONS": str(DEMO_INTERACTIONS),
            "DEMO_USERS": "1500",
            "DEMO_EVENTS": "300",
            "EVENTREC_STATE_DIR": str(tmp_path / "services"),
            "EVENTREC_CACHE_DIR": str(REPO / ".cache"),
            "EVENTREC_LOCAL_KAFKA_PORT": str(DEMO_KAFKA_PORT),
            "EVENTREC_LOCAL_KAFKA_CONTROLLER_PORT": str(DEMO_KAFKA_PORT + 1),
            "EVENTREC_LOCAL_REDIS_PORT": str(DEMO_REDIS_PORT),
            "EVENTREC_HTTP_PORT": str(http_port),
            # The operations ports' defaults (8001-8003) would collide with a running demo.
            "EVENTREC_OPS_PORT": "0",
            "EVENTREC_CONSUMER_OPS_PORT": "0",
            "EVENTREC_TRAINER_OPS_PORT": "0",
        }
    )
    demo_bootstrap = f"127.0.0.1:{DEMO_KAFKA_PORT}"
    demo = Settings(
        kafka_bootstrap_servers=demo_bootstrap,
        redis_url=f"redis://127.0.0.1:{DEMO_REDIS_PORT}/0",
    )
    try:
        run = subprocess.run(
            ["bash", "scripts/demo.sh"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
        assert "== eventrec is running" in run.stdout
        assert f"API:          http://127.0.0.1:{http_port}" in run.stdout

        # The demo's data went to the demo's broker and server, all of it.
        assert end_offsets(demo_bootstrap, "interactions") == DEMO_INTERACTIONS
        assert applied_offsets(demo) == DEMO_INTERACTIONS
        ready = httpx.get(f"http://127.0.0.1:{http_port}/ready", timeout=10).json()
        assert ready["ready"] is True
        assert ready["model_version"] == "v000001"

        # Nothing of it reached the test stack; the test stack's own data is untouched.
        assert not {"interactions", "events", "users"} & topics_of(services.kafka_address)
        assert list(neighbour_redis.scan_iter(match="eventrec:*")) == []
        assert neighbour_redis.get(f"{neighbour.key_prefix}:marker") == b"test stack"
        demo_redis = redis.Redis.from_url(demo.redis_url)
        assert demo_redis.get(f"{neighbour.key_prefix}:marker") is None
        demo_redis.close()
    finally:
        down = subprocess.run(
            ["bash", "scripts/demo-down.sh"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        neighbour_redis.delete(f"{neighbour.key_prefix}:marker")
        neighbour_redis.close()
    assert down.returncode == 0, down.stderr
    assert f"kafka: stopped at {demo_bootstrap}" in down.stdout
    assert f"redis: stopped at {demo.redis_url}" in down.stdout
