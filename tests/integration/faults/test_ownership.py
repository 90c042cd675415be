"""Interactions on any partition: other partitioners, no key, ids shared across users,
timestamps from the future, and catalog messages without a key."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.store import Store, connect
from eventrec.topics import create_topics, missing_topics
from tests.integration.conftest import ON_SERVER_AND_CLUSTER, unique_settings
from tests.integration.faults.harness import (
    NO_COMPACTION,
    NewUsers,
    Sent,
    _iso,
    assert_exact,
    end_offsets,
    produce_confluent,
    produce_entities,
    produce_kafka_python,
    read_all,
    wait_caught_up,
)
from tests.integration.ingest_helpers import ConsumerProcess, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def settings(services: LocalServices, redis_url: str) -> Iterator[Settings]:
    test_settings = unique_settings(services, redis_url=redis_url, row_compact_bytes=NO_COMPACTION)
    create_topics(test_settings)
    wanted = [test_settings.topic_interactions, test_settings.topic_dlq]
    wait_until(lambda: not missing_topics(test_settings, wanted), 30, "the topics visible")
    yield test_settings
    store = Store(connect(test_settings.redis_url), test_settings.key_prefix)
    keys = list(store.client.scan_iter(match=f"{test_settings.key_prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        store.client.delete(*keys[start : start + 1000])
    store.client.close()


def routed(settings: Settings) -> int:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    try:
        ends = end_offsets(settings, settings.topic_interactions)
        return sum(store.stats(settings.topic_interactions, p).get("routed", 0) for p in ends)
    finally:
        store.client.close()


def consume(settings: Settings, log_path: Path, timeout: float = 120) -> None:
    consumer = ConsumerProcess(settings, log_path).start()
    try:
        wait_caught_up(settings, timeout)
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]


@ON_SERVER_AND_CLUSTER
def test_a_producer_with_librdkafkas_default_partitioner_loses_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    stream = NewUsers(n_users=400, n_events=80, seed=11)
    # The same users from a murmur2 client (kafka-python, as Java), then from librdkafka.
    first, second = stream.take(1000), stream.take(2000)
    produce_kafka_python(settings, first)
    produce_confluent(settings, second)
    consume(settings, tmp_path / "consumer.log")
    counted = assert_exact(settings, first + second)
    assert counted.dead_lettered == 0
    assert routed(settings) > 1000  # librdkafka's hash puts most users off their owner


@ON_SERVER_AND_CLUSTER
def test_keyless_interactions_are_routed_to_their_owner(settings: Settings, tmp_path: Path) -> None:
    sent = NewUsers(n_users=300, n_events=60, seed=12).take(2000)
    for message in sent:
        message.key = None
    produce_kafka_python(settings, sent)
    consume(settings, tmp_path / "consumer.log")
    counted = assert_exact(settings, sent)
    assert counted.dead_lettered == 0
    assert routed(settings) > 0


def test_the_same_interaction_id_from_two_users_counts_twice(
    settings: Settings, tmp_path: Path
) -> None:
    stream = NewUsers(n_users=200, n_events=40, seed=13)
    sent: list[Sent] = []
    for n in range(1000):
        first = stream.one()
        sent.append(first)
        assert first.body is not None
        if n % 5 == 0:  # another user picks the same id: both count
            body = {**first.body, "user_id": f"other-{n % 50}"}
            sent.append(Sent(body["user_id"].encode(), json.dumps(body).encode(), body, True))
        if n % 7 == 0:  # the same user re-sends: counted once
            sent.append(Sent(first.key, first.value, first.body, True))
    produce_kafka_python(settings, sent)
    consume(settings, tmp_path / "consumer.log")
    counted = assert_exact(settings, sent)
    assert counted.deduplicated == len(range(0, 1000, 7))


def test_a_timestamp_from_the_future_is_dead_lettered_with_the_reason(
    settings: Settings, tmp_path: Path
) -> None:
    stream = NewUsers(n_users=100, n_events=30, seed=14)
    sent = stream.take(500)
    now = time.time()
    for n, when in enumerate(("9999-01-01T00:00:00Z", _iso(now + 3600), _iso(now + 120))):
        body = {**(stream.one(user=f"u-{n}").body or {}), "occurred_at": when}
        body.pop("query", None)
        body.update(type="view", event_id="ev-1", interaction_id=f"future-{n}")
        valid = n == 2  # two minutes ahead is within EVENTREC_MAX_CLOCK_SKEW_SECONDS
        sent.append(Sent(body["user_id"].encode(), json.dumps(body).encode(), body, valid))
    produce_kafka_python(settings, sent)
    consume(settings, tmp_path / "consumer.log")
    counted = assert_exact(settings, sent)
    assert counted.dead_lettered == 2
    reasons = [
        dict(letter.headers)["eventrec.reason"].decode()
        for letter in read_all(settings, settings.topic_dlq)
    ]
    assert all("EVENTREC_MAX_CLOCK_SKEW_SECONDS" in reason for reason in reasons), reasons


def catalog_event(event_id: str, title: str) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "event_id": event_id,
            "title": title,
            "category": "music",
            "city": "Colombo",
            "price": {"amount": 1500},
            "starts_at": "2027-06-20T18:00:00+05:30",
        }
    ).encode()


@ON_SERVER_AND_CLUSTER
def test_an_entity_written_on_two_partitions_is_deleted_and_keyless_ones_dead_lettered(
    settings: Settings, tmp_path: Path
) -> None:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    topic = settings.topic_events
    # What two clients with different partitioners left: one event on two partitions.
    partition = next(
        p for p in range(settings.topic_partitions) if p != _partition_of(settings, b"ev-twice")
    )
    store.apply_entities(
        "events", topic, partition, 0, 0, [("ev-twice", catalog_event("ev-twice", "old"))]
    )
    assert "ev-twice" in store.entity_documents("events", topic)

    produce_entities(
        settings,
        topic,
        [
            (b"ev-twice", catalog_event("ev-twice", "new")),
            # The broker refuses a null key on a compacted topic; an empty one gets through.
            (b"", catalog_event("ev-keyless", "keyless")),
            (b"ev-other", catalog_event("ev-other", "kept")),
        ],
    )
    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    try:

        def applied() -> bool:
            # The copy elsewhere is removed a step before the new document is written (the
            # topic's version moves only with the second): wait for both, not one.
            documents = store.entity_documents("events", topic)
            twice = documents.get("ev-twice")
            return (
                "ev-other" in documents
                and twice is not None
                and json.loads(twice)["title"] == "new"
            )

        wait_until(applied, 60, "the catalog applied")
        documents = store.entity_documents("events", topic)
        assert json.loads(documents["ev-twice"])["title"] == "new"
        _tombstone(settings, topic, b"ev-twice")
        wait_until(
            lambda: "ev-twice" not in store.entity_documents("events", topic),
            60,
            "the deletion applied on every partition",
        )
        assert set(store.entity_documents("events", topic)) == {"ev-other"}
        wait_until(lambda: len(read_all(settings, settings.topic_dlq)) == 1, 60, "the dead letter")
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    letters = read_all(settings, settings.topic_dlq)
    assert len(letters) == 1
    headers = dict(letters[0].headers)
    assert headers["eventrec.topic"] == topic.encode()
    assert headers["eventrec.reason"].startswith(b"key: catalog messages need the event_id")
    store.client.close()


def _partition_of(settings: Settings, key: bytes) -> int:
    from kafka.partitioner.default import murmur2

    return (murmur2(key) & 0x7FFFFFFF) % settings.topic_partitions


def _tombstone(settings: Settings, topic: str, key: bytes) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    producer.send(topic, key=key, value=None)
    producer.flush()
    producer.close()
