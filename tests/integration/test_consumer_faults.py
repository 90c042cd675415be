"""Crashes, fencing, rebalances and outages: nothing lost, nothing counted twice."""

from __future__ import annotations

import random
import threading
import time
from pathlib import Path

import pytest
import redis

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.errors import FencedBatchError
from eventrec.store import InteractionBatch, Store, connect, interaction_hash
from tests.integration.conftest import ON_SERVER_AND_CLUSTER
from tests.integration.ingest_helpers import (
    ConsumerProcess,
    Message,
    Stream,
    applied_offsets,
    assert_exactly_once,
    assert_same_matrix,
    expected_matrix,
    produce,
    stored_matrix,
    wait_until,
)

pytestmark = pytest.mark.integration


def produce_in_background(
    settings: Settings, messages: list[Message], chunks: int, pause: float
) -> threading.Thread:
    def run() -> None:
        size = -(-len(messages) // chunks)
        for start in range(0, len(messages), size):
            produce(settings, settings.topic_interactions, messages[start : start + size])
            time.sleep(pause)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


@ON_SERVER_AND_CLUSTER
def test_kill_9_at_random_moments_loses_and_doubles_nothing(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    messages = Stream(n_users=3000, n_events=500, seed=21, duplicate_fraction=0.01).take(200_000)
    producer = produce_in_background(settings, messages, chunks=10, pause=0.3)
    log_path = tmp_path / "consumer.log"
    consumer = ConsumerProcess(settings, log_path).start()
    chance = random.Random(5)
    try:
        for _ in range(6):
            time.sleep(chance.uniform(0.5, 2.5))
            consumer.kill()
            consumer = ConsumerProcess(settings, log_path).start()
        producer.join(timeout=300)
        assert not producer.is_alive()
        wait_until(lambda: applied_offsets(settings) == len(messages), 300, "every offset applied")
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert_exactly_once(messages, settings)
    assert_same_matrix(expected_matrix(messages), stored_matrix(settings))


@ON_SERVER_AND_CLUSTER
def test_a_stale_batch_is_fenced_off(settings: Settings, redis_client: redis.Redis) -> None:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    topic = settings.topic_interactions
    first = InteractionBatch(topic, 2, expected_offset=0, next_offset=10)
    first.add_record(0, b"\x01" * 12, interaction_hash("i-1"))
    store.apply_interactions(first, time.time())
    assert store.stored_offset(topic, 2) == 10

    stale = InteractionBatch(topic, 2, expected_offset=4, next_offset=12)
    stale.add_record(0, b"\x02" * 12, interaction_hash("i-2"))
    with pytest.raises(FencedBatchError, match="stored offset 10"):
        store.apply_interactions(stale, time.time())
    assert store.stored_offset(topic, 2) == 10
    assert store.client.get(store.keys.row(topic, 2, 0)) == b"\x01" * 12

    follow_on = InteractionBatch(topic, 2, expected_offset=10, next_offset=11)
    follow_on.add_record(0, b"\x03" * 12, interaction_hash("i-3"))
    store.apply_interactions(follow_on, time.time())
    assert store.client.get(store.keys.row(topic, 2, 0)) == b"\x01" * 12 + b"\x03" * 12


@ON_SERVER_AND_CLUSTER
def test_a_resumed_partition_whose_offset_redis_lost_is_fenced(
    settings: Settings, redis_client: redis.Redis
) -> None:
    """A step that resumes from a stored offset refuses a partition Redis has forgotten
    (a failover to a replica that never received its first steps): applying it would skip
    the lost offsets for good. A first batch (nothing stored yet) starts the partition."""
    store = Store(connect(settings.redis_url), settings.key_prefix)
    topic, events = settings.topic_interactions, settings.topic_events
    resumed = InteractionBatch(topic, 1, expected_offset=7, next_offset=9, resumes=True)
    resumed.add_record(0, b"\x01" * 12, interaction_hash("i-1"))
    with pytest.raises(FencedBatchError, match="no stored offset"):
        store.apply_interactions(resumed, time.time())
    assert store.stored_offset(topic, 1) is None
    assert store.client.get(store.keys.row(topic, 1, 0)) is None
    with pytest.raises(FencedBatchError, match="no stored offset"):
        store.apply_entities("events", events, 1, 7, 9, [("e-1", b"{}")], resumes=True)
    assert store.entity_documents("events", events) == {}

    first = InteractionBatch(topic, 1, expected_offset=7, next_offset=9)
    first.add_record(0, b"\x01" * 12, interaction_hash("i-1"))
    store.apply_interactions(first, time.time())
    assert store.stored_offset(topic, 1) == 9
    store.apply_entities("events", events, 1, 7, 9, [("e-1", b"{}")])
    assert store.entity_documents("events", events) == {"e-1": b"{}"}
    # A first batch of a partition another consumer has started is fenced as before.
    late = InteractionBatch(topic, 1, expected_offset=7, next_offset=9)
    with pytest.raises(FencedBatchError, match="stored offset 9"):
        store.apply_interactions(late, time.time())


def test_two_consumers_split_partitions_and_a_late_joiner_changes_nothing(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    messages = Stream(n_users=1500, n_events=300, seed=31).take(60_000)
    first = ConsumerProcess(settings, tmp_path / "first.log").start()
    produce(settings, settings.topic_interactions, messages[:30_000])
    time.sleep(1.0)
    second = ConsumerProcess(settings, tmp_path / "second.log").start()  # joins mid-stream
    produce(settings, settings.topic_interactions, messages[30_000:])
    try:
        wait_until(lambda: applied_offsets(settings) == len(messages), 180, "every offset applied")
    finally:
        assert first.stop() == 0, first.log()[-2000:]
        assert second.stop() == 0, second.log()[-2000:]
    assert '"partitions"' in second.log()  # the late joiner was given partitions
    assert_same_matrix(expected_matrix(messages), stored_matrix(settings))


def test_redis_down_for_10_seconds_mid_stream(
    settings: Settings, redis_client: redis.Redis, services: LocalServices, tmp_path: Path
) -> None:
    messages = Stream(n_users=1000, n_events=300, seed=41).take(40_000)
    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    try:
        produce(settings, settings.topic_interactions, messages[:20_000])
        wait_until(lambda: applied_offsets(settings) > 0, 60, "the first batches")
        services._stop(services.redis_dir, "redis")
        produce(settings, settings.topic_interactions, messages[20_000:])
        time.sleep(10)
        assert consumer.process is not None
        assert consumer.process.poll() is None  # waiting, not crashed
        services.up()
        wait_until(lambda: applied_offsets(settings) == len(messages), 120, "every offset applied")
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert "redis unavailable" in consumer.log()
    assert "redis is back" in consumer.log()
    assert_exactly_once(messages, settings)
    assert_same_matrix(expected_matrix(messages), stored_matrix(settings))


def test_broker_restart_mid_stream(
    settings: Settings, redis_client: redis.Redis, services: LocalServices, tmp_path: Path
) -> None:
    messages = Stream(n_users=1000, n_events=300, seed=51).take(30_000)
    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    try:
        produce(settings, settings.topic_interactions, messages[:15_000])
        wait_until(lambda: applied_offsets(settings) > 0, 60, "the first batches")
        services._stop(services.kafka_dir, "kafka")
        time.sleep(3)
        services.up()
        produce(settings, settings.topic_interactions, messages[15_000:])
        wait_until(lambda: applied_offsets(settings) == len(messages), 180, "every offset applied")
        assert consumer.process is not None
        assert consumer.process.poll() is None
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert_exactly_once(messages, settings)
    assert_same_matrix(expected_matrix(messages), stored_matrix(settings))
