"""`interactions` grown from 6 to 12 partitions while producers keep writing and consumer
members come and go: nothing lost, nothing counted twice, rows never move."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka.admin import NewPartitions

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.store import Store, connect
from eventrec.topics import admin_client, create_topics, missing_topics
from tests.integration.conftest import unique_settings
from tests.integration.faults.harness import (
    NO_COMPACTION,
    NewUsers,
    Sent,
    assert_exact,
    end_offsets,
    produce_kafka_python,
    wait_caught_up,
)
from tests.integration.ingest_helpers import ConsumerProcess, wait_until

pytestmark = pytest.mark.integration

N_INTERACTIONS = 200_000
MEMBERS = 4


@pytest.fixture
def settings(services: LocalServices) -> Iterator[Settings]:
    test_settings = unique_settings(services, row_compact_bytes=NO_COMPACTION)
    create_topics(test_settings)
    wanted = [test_settings.topic_interactions, test_settings.topic_dlq]
    wait_until(lambda: not missing_topics(test_settings, wanted), 30, "the topics visible")
    yield test_settings
    store = Store(connect(test_settings.redis_url), test_settings.key_prefix)
    keys = list(store.client.scan_iter(match=f"{test_settings.key_prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        store.client.delete(*keys[start : start + 1000])
    store.client.close()


def grow(settings: Settings, partitions: int) -> None:
    admin = admin_client(settings)
    try:
        admin.create_partitions({settings.topic_interactions: NewPartitions(partitions)})
    finally:
        admin.close()


def start_member(settings: Settings, log_path: Path) -> ConsumerProcess:
    """A consumer member, once it runs (a SIGTERM before it handles signals kills it)."""
    started = ConsumerProcess(settings, log_path).start()
    wait_until(lambda: "consumer started" in started.log(), 60, "a member started")
    return started


def test_growing_partitions_with_members_coming_and_going_loses_nothing(
    settings: Settings, tmp_path: Path
) -> None:
    stream = NewUsers(n_users=5000, n_events=400, seed=51)
    sent: list[Sent] = []
    for n in range(N_INTERACTIONS):
        message = stream.one()
        if n % 100 == 99:
            message = Sent(message.key, b'{"schema_version": 1, "user_id": ', None, False)
        elif n % 150 == 0 and sent:
            message = Sent(sent[-1].key, sent[-1].value, sent[-1].body, sent[-1].valid)
        sent.append(message)
    chunks = 30
    size = -(-len(sent) // chunks)
    grown = threading.Event()
    grown_at: list[float] = []
    first_new_applied: list[float] = []

    def new_partitions_applied() -> bool:
        store = Store(connect(settings.redis_url), settings.key_prefix)
        try:
            stored = store.stored_offsets(settings.topic_interactions, range(6, 12))
        finally:
            store.client.close()
        return any(offset for offset in stored.values())

    def producer() -> None:
        for i, start in enumerate(range(0, len(sent), size)):
            # A short metadata age, so this producer spreads over new partitions at once.
            produce_kafka_python(settings, sent[start : start + size], metadata_max_age_ms=1000)
            if i == chunks // 3:
                grow(settings, 12)
                grown_at.append(time.monotonic())
                grown.set()
            time.sleep(0.5)

    thread = threading.Thread(target=producer, daemon=True)
    chance = random.Random(7)
    members = [start_member(settings, tmp_path / "member-0.log")]
    started = 1
    thread.start()
    try:
        while thread.is_alive():
            time.sleep(chance.uniform(1.0, 3.0))
            if grown.is_set() and not first_new_applied and new_partitions_applied():
                first_new_applied.append(time.monotonic())
            if len(members) < MEMBERS and (len(members) == 1 or chance.random() < 0.5):
                members.append(start_member(settings, tmp_path / f"member-{started}.log"))
                started += 1
            else:
                leaving = members.pop(chance.randrange(len(members)))
                assert leaving.stop() == 0, leaving.log()[-3000:]
        thread.join()
        assert grown.is_set()
        if len(members) < 2:
            members.append(start_member(settings, tmp_path / f"member-{started}.log"))
            started += 1
        wait_caught_up(settings, 300)
        if not first_new_applied:
            first_new_applied.append(time.monotonic())
    finally:
        for member in members:
            assert member.stop() == 0, member.log()[-3000:]
    assert started >= 4
    # Added partitions are consumed within a minute (EVENTREC_CONSUMER_METADATA_MAX_AGE_MS).
    assert first_new_applied[0] - grown_at[0] < 60
    ends = end_offsets(settings, settings.topic_interactions)
    assert len(ends) == 12
    assert all(ends[p] > 0 for p in range(6, 12))
    counted = assert_exact(settings, sent)
    assert counted.published == N_INTERACTIONS
    store = Store(connect(settings.redis_url), settings.key_prefix)
    routed = sum(store.stats(settings.topic_interactions, p).get("routed", 0) for p in ends)
    store.client.close()
    assert routed > 0  # users first seen on 0..5 whose key now hashes to 6..11
