"""The fault harness: what a test's producer sent against what Redis holds, exactly.

Every scenario ends with the same accounting: interactions published (counted here) =
applied (counted from the rows) + de-duplicated + dead-lettered, every user's row holds
exactly that user's interactions, and nothing valid was dead-lettered.
"""

from __future__ import annotations

import calendar
import json
import random
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from eventrec.config import Settings
from eventrec.model.records import MAX_VALUE, TYPE_CODES, booking_hash
from eventrec.store import Store, connect
from tests.integration.ingest_helpers import wait_until

# Rows are compared record by record: no compaction in the harness.
NO_COMPACTION = 1 << 30


@dataclass
class Sent:
    """One interaction as the test's producer sent it."""

    key: bytes | None
    value: bytes
    body: dict[str, Any] | None  # None: not valid JSON of an interaction
    valid: bool
    partition: int | None = None  # forced partition (None: the client's partitioner)


@dataclass
class NewUsers:
    """Interactions of brand-new users, times near now (within the allowed skew)."""

    n_users: int
    n_events: int
    seed: int = 1
    prefix: str = "u"
    id_prefix: str = "i"
    _count: int = 0
    _bookings: dict[tuple[str, str], list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.start = int(time.time()) - 3 * 86_400

    def one(self, user: str | None = None) -> Sent:
        rnd = self.random
        self._count += 1
        user = user or f"{self.prefix}-{rnd.randrange(self.n_users)}"
        event = f"ev-{rnd.randrange(self.n_events)}"
        kind = rnd.choices(
            ("view", "save", "booking", "booking_cancelled", "rating", "dismiss", "search"),
            weights=(50, 12, 12, 3, 10, 5, 3),
        )[0]
        body: dict[str, Any] = {
            "schema_version": 1,
            "interaction_id": f"{self.id_prefix}-{self.seed}-{self._count}",
            "user_id": user,
            "event_id": event,
            "type": kind,
            "occurred_at": _iso(self.start + self._count),
        }
        if kind == "rating":
            body["rating"] = rnd.randint(1, 5)
        elif kind == "search":
            del body["event_id"]
            body["query"] = rnd.choice(("jazz", "cricket colombo", "food festival"))
        elif kind == "booking":
            booking_id = f"b-{self.seed}-{self._count}"
            body["booking_id"] = booking_id
            body["quantity"] = rnd.randint(1, 4)
            self._bookings.setdefault((user, event), []).append(booking_id)
        elif kind == "booking_cancelled":
            known = self._bookings.get((user, event))
            if known:
                body["booking_id"] = rnd.choice(known)
        return Sent(user.encode(), json.dumps(body).encode(), body, True)

    def take(self, n: int) -> list[Sent]:
        return [self.one() for _ in range(n)]


def _iso(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def produce_kafka_python(
    settings: Settings, messages: Iterable[Sent], metadata_max_age_ms: int = 300_000
) -> None:
    """kafka-python with its default partitioner (murmur2, as Java's)."""
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=10,
        max_in_flight_requests_per_connection=1,
        metadata_max_age_ms=metadata_max_age_ms,
    )
    futures = [
        producer.send(settings.topic_interactions, key=m.key, value=m.value, partition=m.partition)
        for m in messages
    ]
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    producer.close()


def produce_confluent(settings: Settings, messages: Iterable[Sent]) -> None:
    """confluent-kafka (librdkafka) with its default partitioner, consistent_random."""
    from confluent_kafka import Producer

    producer = Producer(
        {"bootstrap.servers": settings.kafka_bootstrap_servers, "acks": "all", "linger.ms": 10}
    )
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    for m in messages:
        while True:
            try:
                producer.produce(
                    settings.topic_interactions, value=m.value, key=m.key, on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
    assert producer.flush(60) == 0, "confluent-kafka could not deliver"
    assert not failures, failures[:3]


def produce_entities(
    settings: Settings, topic: str, items: list[tuple[bytes | None, bytes]]
) -> None:
    producer = KafkaProducer(bootstrap_servers=settings.bootstrap_servers, acks="all")
    futures = [producer.send(topic, key=key, value=value) for key, value in items]
    producer.flush()
    for future in futures:
        future.get(timeout=30)
    producer.close()


def end_offsets(settings: Settings, topic: str) -> dict[int, int]:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        return {tp.partition: int(o) for tp, o in consumer.end_offsets(partitions).items()}
    finally:
        consumer.close()


def caught_up(settings: Settings) -> bool:
    """Every partition of ``interactions`` applied up to its end (routed copies included)."""
    ends = end_offsets(settings, settings.topic_interactions)
    store = Store(connect(settings.redis_url), settings.key_prefix)
    try:
        stored = store.stored_offsets(settings.topic_interactions, list(ends))
    finally:
        store.client.close()
    return all((stored[p] or 0) == end for p, end in ends.items())


def wait_caught_up(settings: Settings, timeout: float) -> None:
    wait_until(lambda: caught_up(settings), timeout, "every interactions offset applied")


def read_all(settings: Settings, topic: str) -> list[Any]:
    """Every message of a topic, up to its end offsets now."""
    ends = end_offsets(settings, topic)
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in ends]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    found: list[Any] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and any(
        consumer.position(tp) < ends[tp.partition] for tp in partitions
    ):
        for batch in consumer.poll(timeout_ms=500).values():
            found.extend(batch)
    consumer.close()
    return found


Record = tuple[str, int, int, int, int]  # event id, type, time, value, aux


def expected_rows(sent: Iterable[Sent]) -> tuple[dict[str, Counter[Record]], dict[str, int], int]:
    """Per user the records the valid messages amount to, searches per user, duplicates.

    De-duplication is per (user, interaction_id): the first copy counts.
    """
    seen: set[tuple[str, str]] = set()
    rows: dict[str, Counter[Record]] = {}
    searches: Counter[str] = Counter()
    duplicates = 0
    for message in sent:
        body = message.body
        if not message.valid or body is None:
            continue
        key = (body["user_id"], body["interaction_id"])
        if key in seen:
            duplicates += 1
            continue
        seen.add(key)
        if body["type"] == "search":
            searches[body["user_id"]] += 1
            continue
        kind = body["type"]
        if kind == "rating":
            value = body["rating"]
        elif kind == "booking":
            value = min(body.get("quantity") or 1, MAX_VALUE)
        else:
            value = 1
        stamp = calendar.timegm(time.strptime(body["occurred_at"], "%Y-%m-%dT%H:%M:%SZ"))
        aux = booking_hash(body["booking_id"]) if body.get("booking_id") else 0
        record = (body["event_id"], TYPE_CODES[kind], stamp, value, aux)
        rows.setdefault(body["user_id"], Counter())[record] += 1
    return rows, dict(searches), duplicates


def stored_rows(settings: Settings) -> tuple[dict[str, Counter[Record]], dict[str, int]]:
    """Per user the records Redis holds (event ids resolved), and search counts."""
    store = Store(connect(settings.redis_url), settings.key_prefix)
    try:
        snapshot = store.snapshot(settings.topic_interactions)
        log = snapshot.log
        rows: dict[str, Counter[Record]] = {}
        events = snapshot.event_ids
        for user, record in zip(log.user.tolist(), log.records.tolist(), strict=True):
            event, stamp, kind, value, aux = record
            user_id = snapshot.user_ids[user]
            rows.setdefault(user_id, Counter())[(events[event], kind, stamp, value, aux)] += 1
        searches: dict[str, int] = {}
        owned = store.user_ids()
        for user_id in owned:
            found = len(store.user_searches(settings.topic_interactions, user_id))
            if found:
                searches[user_id] = found
        return rows, searches
    finally:
        store.client.close()


def deduplicated(settings: Settings) -> int:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    try:
        ends = end_offsets(settings, settings.topic_interactions)
        return sum(store.stats(settings.topic_interactions, p).get("deduplicated", 0) for p in ends)
    finally:
        store.client.close()


@dataclass
class Accounting:
    published: int
    applied: int
    deduplicated: int
    dead_lettered: int


def assert_exact(settings: Settings, sent: list[Sent], search_cap: int = 20) -> Accounting:
    """published = applied (from rows) + de-duplicated + dead-lettered, and every row exact."""
    want_rows, want_searches, want_duplicates = expected_rows(sent)
    got_rows, got_searches = stored_rows(settings)
    wrong = sorted(
        u for u in want_rows.keys() | got_rows.keys() if want_rows.get(u) != got_rows.get(u)
    )
    assert not wrong, (
        f"{len(wrong)} users' rows differ from what was sent, e.g. {wrong[:3]}: "
        f"{[(want_rows.get(u), got_rows.get(u)) for u in wrong[:1]]}"
    )
    assert got_searches == {u: min(n, search_cap) for u, n in want_searches.items()}
    assert all(n <= search_cap for n in want_searches.values()), "searches past the cap"
    letters = read_all(settings, settings.topic_dlq)
    invalid = Counter(m.value for m in sent if not m.valid)
    dead = Counter(letter.value for letter in letters)
    assert dead == invalid, "dead letters are not exactly the invalid messages sent"
    applied = sum(sum(c.values()) for c in got_rows.values()) + sum(got_searches.values())
    counted = Accounting(len(sent), applied, deduplicated(settings), len(letters))
    assert counted.deduplicated == want_duplicates
    assert counted.published == counted.applied + counted.deduplicated + counted.dead_lettered, (
        counted
    )
    return counted
