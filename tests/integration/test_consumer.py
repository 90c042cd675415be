"""The consumer against the real broker and server: exact matrix, dead letters, duplicates."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventrec.config import Settings
from eventrec.schemas import DeadLetter
from eventrec.store import Store, connect
from tests.integration.ingest_helpers import (
    INVALID_WORDS,
    ConsumerProcess,
    Stream,
    applied_offsets,
    assert_same_matrix,
    expected_matrix,
    produce,
    read_topic,
    stored_matrix,
    wait_until,
)

pytestmark = pytest.mark.integration


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
