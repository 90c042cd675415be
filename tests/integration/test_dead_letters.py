"""Dead letters against the real broker and server: none lost, none stalling, replayable."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.model.records import TYPE_BOOKING
from eventrec.schemas import DeadLetter
from eventrec.store import Store, connect
from eventrec.topics import create_topics, missing_topics
from tests.integration.conftest import ON_SERVER_AND_CLUSTER, unique_settings
from tests.integration.ingest_helpers import (
    BASE_TIME,
    ConsumerProcess,
    Message,
    Stream,
    applied_offsets,
    assert_same_matrix,
    expected_matrix,
    produce,
    read_topic,
    settings_env,
    stored_matrix,
    wait_until,
)

pytestmark = pytest.mark.integration


@pytest.fixture
def dlq_settings(services: LocalServices, redis_url: str) -> Iterator[Settings]:
    """This test's topics and prefix; dead letters expire quickly, and are kept small."""
    test_settings = unique_settings(
        services, redis_url=redis_url, dlq_delivery_timeout_seconds=3, dlq_max_message_bytes=20_000
    )
    create_topics(test_settings)
    # A loaded broker lists new topics seconds later; the consumer refuses to start without.
    wait_until(lambda: not missing_topics(test_settings, test_settings.topics), 60, "topics")
    yield test_settings
    client = connect(test_settings.redis_url)  # on a cluster, SCAN visits every master
    keys = list(client.scan_iter(match=f"{test_settings.key_prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def interaction(user: str, number: int, kind: str = "view", **fields: Any) -> Message:
    body: dict[str, Any] = {
        "schema_version": 1,
        "interaction_id": f"{user}-{number}",
        "user_id": user,
        "event_id": f"event-{number % 7}",
        "type": kind,
        "occurred_at": datetime.fromtimestamp(BASE_TIME + number, UTC).isoformat(),
        **fields,
    }
    return Message(user.encode(), json.dumps(body).encode(), True, body=body)


def broken(user: str, number: int) -> Message:
    return Message(user.encode(), b'{"schema_version": 1, "user_id": "' + user.encode(), False)


def dead_letters(settings: Settings, expected: int) -> list[DeadLetter]:
    records = read_topic(settings, settings.topic_dlq, expected, timeout=60)
    return [DeadLetter.from_kafka(r.key, r.value, r.headers) for r in records]


def stored_offsets(settings: Settings) -> dict[int, int | None]:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    offsets = store.stored_offsets(settings.topic_interactions, range(settings.topic_partitions))
    store.client.close()
    return offsets


def test_a_dead_letter_whose_send_fails_holds_its_batch_until_it_is_sent(
    dlq_settings: Settings, services: LocalServices, tmp_path: Path
) -> None:
    settings = dlq_settings
    first = Stream(n_users=200, n_events=50, seed=61, invalid_fraction=0.05).take(2000)
    # New users, so the consumer needs Redis for this batch before its dead letters go out.
    second = [
        broken(f"late-{i}", i) if i % 5 == 0 else interaction(f"late-{i}", i) for i in range(40)
    ]
    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    try:
        produce(settings, settings.topic_interactions, first)
        wait_until(lambda: applied_offsets(settings) == len(first), 120, "the first messages")
        held = stored_offsets(settings)

        # The right moment: the batch is polled and waits for Redis; then Kafka goes away.
        services._stop(services.redis_dir, "redis")
        produce(settings, settings.topic_interactions, second)
        wait_until(lambda: "redis unavailable" in consumer.log(), 60, "the consumer to wait")
        services._stop(services.kafka_dir, "kafka")
        services._redis_up()
        wait_until(lambda: "redis is back" in consumer.log(), 60, "redis to be back")
        time.sleep(3 * settings.dlq_delivery_timeout_seconds)  # the sends expire meanwhile
        during = stored_offsets(settings)
        for message in second:
            if not message.valid:  # no offset moved past an unsent dead letter
                assert (during[message.partition] or 0) <= message.offset
        assert any(during[p] == held[p] for p in {m.partition for m in second if not m.valid})
        assert "kafka unavailable" in consumer.log()

        services._kafka_up()
        total = len(first) + len(second)
        wait_until(lambda: applied_offsets(settings) == total, 120, "every offset applied")
    finally:
        services.up()
        assert consumer.stop() == 0, consumer.log()[-3000:]

    invalid = [m for m in first + second if not m.valid]
    letters = dead_letters(settings, len(invalid))
    sent = Counter((letter.partition, letter.offset) for letter in letters)
    assert sent == Counter((m.partition, m.offset) for m in invalid)  # each once, none lost
    assert_same_matrix(expected_matrix(first + second), stored_matrix(settings))


def test_an_oversized_message_is_dead_lettered_cut_and_the_partition_keeps_flowing(
    dlq_settings: Settings, tmp_path: Path
) -> None:
    settings = dlq_settings
    user = "user-big"
    huge = interaction(user, 50, blob="x" * 100_000)
    huge.valid = False
    messages = [interaction(user, n) for n in range(50)] + [huge]
    messages += [interaction(user, n) for n in range(51, 120)]
    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    try:
        produce(settings, settings.topic_interactions, messages)
        wait_until(lambda: applied_offsets(settings) == len(messages), 90, "every offset applied")
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]

    [letter] = dead_letters(settings, 1)
    assert (letter.partition, letter.offset) == (huge.partition, huge.offset)
    assert letter.truncated
    assert letter.original_size == len(huge.key) + len(huge.value)
    assert letter.key == huge.key
    assert letter.value is not None
    assert 0 < len(letter.value) < 20_000
    assert huge.value.startswith(letter.value)
    assert letter.reason == "blob: Extra inputs are not permitted"
    assert_same_matrix(expected_matrix(messages), stored_matrix(settings))


def eventrec(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventrec.cli", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def record_counts(settings: Settings) -> Counter[tuple[str, str, int]]:
    """(user, event, type code) → records stored: what each interaction applied amounts to."""
    store = Store(connect(settings.redis_url), settings.key_prefix)
    snapshot = store.snapshot(settings.topic_interactions)
    log, users, events = snapshot.log, snapshot.user_ids, snapshot.event_ids
    store.client.close()
    return Counter(
        (users[u], events[int(r["event"])], int(r["type"]))
        for u, r in zip(log.user, log.records, strict=True)
    )


def deduplicated(settings: Settings) -> int:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    total = sum(
        store.stats(settings.topic_interactions, p).get("deduplicated", 0)
        for p in range(settings.topic_partitions)
    )
    store.client.close()
    return total


@ON_SERVER_AND_CLUSTER
def test_a_replay_after_the_fix_applies_each_once_and_a_second_replay_changes_nothing(
    dlq_settings: Settings, tmp_path: Path
) -> None:
    settings = dlq_settings
    users = [f"fan-{i}" for i in range(30)]
    firsts = [interaction(user, 0, "save") for user in users]
    # A producer whose clock runs 30 minutes fast: dead-lettered beyond the allowed skew.
    ahead = int(time.time()) + 1800
    fast = [interaction(user, n, "booking", booking_id=f"b-{user}-{n}",
                        occurred_at=datetime.fromtimestamp(ahead + n, UTC).isoformat())
            for user in users for n in range(1, 5)]  # fmt: skip
    spoiled = [broken(user, 9) for user in users[:5]]
    total = len(firsts) + len(fast) + len(spoiled)
    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    try:
        produce(settings, settings.topic_interactions, firsts + fast + spoiled)
        wait_until(lambda: applied_offsets(settings) == total, 90, "every offset applied")
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert len(dead_letters(settings, len(fast) + len(spoiled))) == 30 * 4 + 5
    before = record_counts(settings)
    assert sum(before.values()) == len(firsts)

    # The fix: those clocks are trusted after all; the consumer and the replay allow 2 h.
    fixed = settings.model_copy(update={"max_clock_skew_seconds": 7200.0})
    consumer = ConsumerProcess(fixed, tmp_path / "fixed.log").start()
    try:
        listed = eventrec(fixed, "dlq", "list", "--reason", "later than the consumer's clock")
        assert listed.returncode == 0, listed.stderr
        assert "120 dead letters match" in listed.stdout
        replay = eventrec(fixed, "dlq", "replay")
        assert replay.returncode == 0, replay.stderr
        assert replay.stdout.splitlines()[0] == (
            "replayed 120, still invalid 5, skipped 0 (of 125 matching dead letters; 125 read)"
        )
        wait_until(lambda: applied_offsets(settings) == total + 120, 60, "the replay applied")
        after = record_counts(settings)
        bodies = [m.body for m in fast if m.body is not None]
        booking = Counter((b["user_id"], b["event_id"], TYPE_BOOKING) for b in bodies)
        assert after == before + booking  # each interaction exactly once

        again = eventrec(fixed, "dlq", "replay")
        assert again.returncode == 0, again.stderr
        wait_until(lambda: applied_offsets(settings) == total + 240, 60, "the second replay")
        assert record_counts(settings) == after
        assert deduplicated(settings) == 120
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]


def test_publish_sends_what_the_consumer_applies_and_refuses_the_rest(
    dlq_settings: Settings, tmp_path: Path
) -> None:
    settings = dlq_settings
    valid = [interaction(f"reader-{i % 40}", i) for i in range(200)]
    lines = [m.value for m in valid]
    refused = {
        17: b'{"schema_version": 1, "interaction_id": "x-1", "user_id": "u", "type": "rating", '
        b'"event_id": "e", "occurred_at": "2026-11-26T10:00:00Z"}',
        60: b'{"schema_version": 1, "user_id": "u"',
        133: json.dumps({**(valid[0].body or {}), "occurred_at": "2026-11-26T10:00:00"}).encode(),
    }
    for number in sorted(refused):  # 1-based line numbers in the file
        lines.insert(number - 1, refused[number])
    source = tmp_path / "interactions.jsonl"
    source.write_bytes(b"\n".join(lines) + b"\n\n")
    refusals = tmp_path / "refused.jsonl"

    published = eventrec(settings, "publish", str(source), "--topic", "interactions",
                         "--refusals", str(refusals))  # fmt: skip
    assert published.returncode == 1, published.stderr
    report = published.stdout.splitlines()
    assert report[0] == f"sent 200 of 203 messages to {settings.topic_interactions}"
    assert "rating: required for type 'rating'  (line 17)" in published.stdout
    assert "occurred_at: Input should have timezone info  (line 133)" in published.stdout
    written = [json.loads(line) for line in refusals.read_text().splitlines()]
    assert [row["line"] for row in written] == [17, 60, 133]

    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    try:
        wait_until(lambda: applied_offsets(settings) == 200, 60, "every offset applied")
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    assert read_topic(settings, settings.topic_dlq, 0, timeout=1) == []
    records = read_topic(settings, settings.topic_interactions, 200, timeout=30)
    assert sorted(r.value for r in records) == sorted(m.value for m in valid)  # byte for byte
    assert all(r.key == json.loads(r.value)["user_id"].encode() for r in records)
    assert_same_matrix(expected_matrix(valid), stored_matrix(settings))
