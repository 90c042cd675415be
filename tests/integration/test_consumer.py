"""The consumer against the real broker and server: exact matrix, dead letters, duplicates."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import redis

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.schemas import DeadLetter
from eventrec.store import Store, connect
from tests.integration.conftest import ON_SERVER_AND_CLUSTER, unique_settings
from tests.integration.ingest_helpers import (
    INVALID_WORDS,
    ConsumerProcess,
    Message,
    Stream,
    applied_offsets,
    assert_exactly_once,
    assert_same_matrix,
    expected_matrix,
    produce,
    read_topic,
    stored_matrix,
    wait_until,
)

pytestmark = pytest.mark.integration


@ON_SERVER_AND_CLUSTER
def test_matrix_is_exact_and_invalid_messages_are_dead_lettered(
    settings: Settings, redis_client: object, tmp_path: Path
) -> None:
    stream = Stream(n_users=2000, n_events=400, seed=11, duplicate_fraction=0.02)
    messages = stream.take(50_000)
    produce(settings, settings.topic_interactions, messages)
    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    try:
        wait_until(lambda: applied_offsets(settings) == len(messages), 180, "every offset applied")
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]

    assert_same_matrix(expected_matrix(messages), stored_matrix(settings))

    invalid = {(m.partition, m.offset): m for m in messages if not m.valid}
    assert len(invalid) > 0.04 * len(messages)
    letters = read_topic(settings, settings.topic_dlq, len(invalid))
    assert len(letters) == len(invalid)
    for record in letters:
        letter = DeadLetter.from_kafka(record.key, record.value, record.headers)
        source = invalid[(letter.partition, letter.offset)]
        assert letter.topic == settings.topic_interactions
        assert letter.value == source.value
        assert letter.key == source.key
        assert source.invalid_kind is not None
        assert INVALID_WORDS[source.invalid_kind] in letter.reason

    store = Store(connect(settings.redis_url), settings.key_prefix)
    totals: dict[str, int] = {}
    for partition in range(settings.topic_partitions):
        for name, value in store.stats(settings.topic_interactions, partition).items():
            totals[name] = totals.get(name, 0) + value
    valid_ids = [m.body["interaction_id"] for m in messages if m.valid and m.body]
    assert totals["dead_lettered"] == len(invalid)
    assert totals["deduplicated"] == len(valid_ids) - len(set(valid_ids))
    assert totals["processed"] == len(set(valid_ids))


def catalog_message(event_id: str, **changes: object) -> Message:
    body: dict[str, object] = {
        "schema_version": 1,
        "event_id": event_id,
        "title": f"Kandy Perahera Night {event_id}",
        "category": "festivals",
        "city": "Kandy",
        "price": {"amount": 2500, "currency": "LKR"},
        "starts_at": "2027-02-01T18:00:00+05:30",
        **changes,
    }
    return Message(event_id.encode(), json.dumps(body).encode(), True, body=body)


@ON_SERVER_AND_CLUSTER
def test_catalog_and_profiles_upsert_and_tombstones_delete(
    settings: Settings, redis_client: object, tmp_path: Path
) -> None:
    events = [catalog_message(f"e-{n}") for n in range(20)]
    events.append(catalog_message("e-3", status="cancelled"))
    events.append(Message(b"e-4", None, True))  # type: ignore[arg-type]
    events.append(Message(b"e-5", b'{"schema_version": 1, "event_id": "e-5"}', False))
    profile = {"schema_version": 1, "user_id": "u-1", "city": "Galle"}
    users = [
        Message(b"u-1", json.dumps(profile).encode(), True),
        Message(b"u-2", json.dumps({**profile, "user_id": "u-2"}).encode(), True),
        Message(b"u-2", None, True),  # type: ignore[arg-type]
    ]
    produce(settings, settings.topic_events, events)
    produce(settings, settings.topic_users, users)
    store = Store(connect(settings.redis_url), settings.key_prefix)
    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    try:
        wait_until(
            lambda: (
                len(store.entity_documents("users", settings.topic_users)) == 1
                and "e-4" not in store.entity_documents("events", settings.topic_events)
                and len(store.entity_documents("events", settings.topic_events)) == 19
            ),
            60,
            "catalog and profiles applied",
        )
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    catalog = store.entity_documents("events", settings.topic_events)
    assert set(catalog) == {f"e-{n}" for n in range(20)} - {"e-4"}  # e-5 keeps its valid version
    assert json.loads(catalog["e-3"])["status"] == "cancelled"
    assert json.loads(catalog["e-0"])["city"] == "Kandy"
    profiles = store.entity_documents("users", settings.topic_users)
    assert json.loads(profiles["u-1"])["city"] == "Galle"
    assert store.profile_document(settings.topic_users, "u-1", settings.topic_partitions)
    assert store.profile_document(settings.topic_users, "u-2", settings.topic_partitions) is None
    assert store.entity_version(settings.topic_events) > 0
    letters = read_topic(settings, settings.topic_dlq, 1)
    assert len(letters) == 1
    assert (
        "title: Field required"
        in DeadLetter.from_kafka(letters[0].key, letters[0].value, letters[0].headers).reason
    )


def test_refuses_to_start_on_an_evicting_redis(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    redis_client.config_set("maxmemory-policy", "allkeys-lru")
    try:
        consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
        assert consumer.process is not None
        assert consumer.process.wait(timeout=60) != 0
    finally:
        redis_client.config_set("maxmemory-policy", "noeviction")
    assert "maxmemory-policy is 'allkeys-lru'" in consumer.log()


def test_names_the_missing_topics(services: LocalServices, tmp_path: Path) -> None:
    settings = unique_settings(services)  # topics not created
    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    assert consumer.process is not None
    assert consumer.process.wait(timeout=60) != 0
    assert f"missing Kafka topics: {settings.topic_interactions}" in consumer.log()
    assert "eventrec topics create" in consumer.log()


def test_search_history_0_keeps_no_query_and_counts_every_search(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    settings = settings.model_copy(update={"search_history": 0})
    messages = Stream(n_users=200, n_events=50, seed=13).take(3000)
    searches = [m for m in messages if m.valid and m.body and m.body["type"] == "search"]
    assert len(searches) > 50
    produce(settings, settings.topic_interactions, messages)
    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    try:
        wait_until(lambda: applied_offsets(settings) == len(messages), 120, "every offset applied")
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    store = Store(connect(settings.redis_url), settings.key_prefix)
    assert {u: store.user_searches(settings.topic_interactions, u) for u in store.user_ids()} == {
        u: [] for u in store.user_ids()
    }
    store.client.close()
    assert_exactly_once(messages, settings)
