"""Helpers of the ingestion tests: interaction streams, the expected matrix, processes."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from eventrec.config import Settings
from eventrec.model.aggregate import aggregate
from eventrec.model.records import TYPE_CODES
from eventrec.store import Store, connect

RATING_WEIGHTS = (0.0, 0.0, 1.0, 3.0, 5.0)
BASE_TIME = int(datetime(2026, 6, 1, tzinfo=UTC).timestamp())
INVALID_KINDS = (
    "bad_json",
    "missing_field",
    "rating_range",
    "naive_time",
    "unknown_type",
    "rating_on_view",
    "wrong_schema_version",
)
INVALID_WORDS = {
    "bad_json": "Invalid JSON",
    "missing_field": "interaction_id: Field required",
    "rating_range": "rating: Input should be less than or equal to 5",
    "naive_time": "occurred_at: Input should have timezone info",
    "unknown_type": "type: Input should be",
    "rating_on_view": "rating: only allowed for type 'rating'",
    "wrong_schema_version": "schema_version: Input should be 1",
}


def settings_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTREC_")}
    for name, value in settings.model_dump().items():
        if value is not None:
            env[f"EVENTREC_{name.upper()}"] = str(value)
    return env


@dataclass
class Message:
    key: bytes
    value: bytes
    valid: bool
    invalid_kind: str | None = None
    body: dict[str, Any] | None = None
    partition: int = -1
    offset: int = -1


@dataclass
class Stream:
    """A deterministic stream of interactions of every type, some invalid."""

    n_users: int
    n_events: int
    seed: int = 7
    invalid_fraction: float = 0.05
    duplicate_fraction: float = 0.0
    _clock: dict[str, int] = field(default_factory=dict)
    _bookings: dict[tuple[str, str], list[str]] = field(default_factory=dict)
    _count: int = 0

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)

    def _time(self, user: str) -> str:
        # Per-user clock; repeats a second now and then, so rating ties are exercised.
        step = self.random.choice((0, 1, 1, 5, 60))
        self._clock[user] = self._clock.get(user, BASE_TIME) + step
        return datetime.fromtimestamp(self._clock[user], UTC).isoformat()

    def one(self) -> Message:
        self._count += 1
        rnd = self.random
        user = f"user-{rnd.randrange(self.n_users)}"
        event = f"event-{int(rnd.paretovariate(1.2)) % self.n_events}"
        kind = rnd.choices(
            ("view", "save", "booking", "booking_cancelled", "rating", "dismiss", "search"),
            weights=(55, 12, 10, 3, 10, 5, 5),
        )[0]
        body: dict[str, Any] = {
            "schema_version": 1,
            "interaction_id": f"i-{self.seed}-{self._count}",
            "user_id": user,
            "event_id": event,
            "type": kind,
            "occurred_at": self._time(user),
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
            if known and rnd.random() < 0.7:
                body["booking_id"] = rnd.choice(known)
        if rnd.random() < self.invalid_fraction:
            return self._spoil(body)
        return Message(user.encode(), json.dumps(body).encode(), True, body=body)

    def _spoil(self, body: dict[str, Any]) -> Message:
        kind = self.random.choice(INVALID_KINDS)
        key = body["user_id"].encode()
        body = dict(body)
        if kind == "bad_json":
            return Message(key, b'{"schema_version": 1, "user_id": ', False, kind)
        if kind == "missing_field":
            del body["interaction_id"]
        elif kind == "rating_range":
            body.update(type="rating", rating=9, event_id=body.get("event_id", "event-1"))
            body.pop("query", None)
            body.pop("booking_id", None)
            body.pop("quantity", None)
        elif kind == "naive_time":
            body["occurred_at"] = body["occurred_at"][:19]
        elif kind == "unknown_type":
            body["type"] = "like"
        elif kind == "rating_on_view":
            body.update(type="view", rating=3, event_id=body.get("event_id", "event-1"))
            for name in ("query", "booking_id", "quantity"):
                body.pop(name, None)
        elif kind == "wrong_schema_version":
            body["schema_version"] = 2
        return Message(key, json.dumps(body).encode(), False, kind)

    def take(self, n: int) -> list[Message]:
        messages = []
        for _ in range(n):
            message = self.one()
            messages.append(message)
            if message.valid and self.random.random() < self.duplicate_fraction:
                messages.append(Message(message.key, message.value, True, body=message.body))
        return messages


def produce(settings: Settings, topic: str, messages: Iterable[Message]) -> None:
    """Publish messages keyed as producers must, recording each one's partition and offset."""
    producer = KafkaProducer(
        bootstrap_servers=settings.bootstrap_servers,
        acks="all",
        linger_ms=20,
        batch_size=256 * 1024,
        max_in_flight_requests_per_connection=1,
    )
    pending = [
        (message, producer.send(topic, key=message.key, value=message.value))
        for message in messages
    ]
    producer.flush()
    for message, future in pending:
        metadata = future.get(timeout=30)
        message.partition, message.offset = metadata.partition, metadata.offset
    producer.close()


def read_topic(settings: Settings, topic: str, expected: int, timeout: float = 60.0) -> list[Any]:
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    found: list[Any] = []
    deadline = time.monotonic() + timeout
    while len(found) < expected and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=500).values():
            found.extend(batch)
    # Anything beyond `expected` would be a bug too: read a little longer.
    for batch in consumer.poll(timeout_ms=1000).values():
        found.extend(batch)
    consumer.close()
    return found


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


class ConsumerProcess:
    """`eventrec consumer` as a real child process."""

    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.settings = settings
        self.log_path = log_path
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> ConsumerProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "eventrec.cli", "consumer"],
            env=settings_env(self.settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        return self

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def applied_offsets(settings: Settings) -> int:
    """How many interaction offsets the store has applied, over all partitions."""
    store = Store(connect(settings.redis_url), settings.key_prefix)
    offsets = store.stored_offsets(settings.topic_interactions, range(settings.topic_partitions))
    store.client.close()
    return sum(offset or 0 for offset in offsets.values())


def expected_matrix(messages: Iterable[Message]) -> dict[str, Any]:
    """The matrix the valid, first-seen messages amount to, computed without eventrec's model.

    Per (user, event): views, saves, bookings with their cancellations, the latest
    rating (by time, then order), dismissal; per user: search queries.
    """
    seen: set[tuple[str, str]] = set()
    pairs: dict[tuple[str, str], dict[str, Any]] = {}
    searches: dict[str, list[str]] = {}
    ordered = sorted((m for m in messages if m.valid), key=lambda m: (m.partition, m.offset))
    for message in ordered:
        body = message.body
        assert body is not None
        key = (body["user_id"], body["interaction_id"])  # de-duplication is per user
        if key in seen:
            continue
        seen.add(key)
        if body["type"] == "search":
            searches.setdefault(body["user_id"], []).append(body["query"])
            continue
        pair = pairs.setdefault(
            (body["user_id"], body["event_id"]),
            {"views": 0, "saved": False, "bookings": [], "rating": None, "dismissed": False},
        )
        stamp = int(datetime.fromisoformat(body["occurred_at"]).timestamp())
        kind = body["type"]
        if kind == "view":
            pair["views"] += 1
        elif kind == "save":
            pair["saved"] = True
        elif kind == "booking":
            pair["bookings"].append([body.get("booking_id"), True])
        elif kind == "booking_cancelled":
            booking_id = body.get("booking_id")
            same = [b for b in pair["bookings"] if booking_id and b[0] == booking_id]
            live = [b for b in (same or pair["bookings"]) if b[1]]
            if live:
                live[-1][1] = False
        elif kind == "rating":
            if pair["rating"] is None or stamp >= pair["rating"][0]:
                pair["rating"] = (stamp, body["rating"])
        elif kind == "dismiss":
            pair["dismissed"] = True
    confidence: dict[tuple[str, str], float] = {}
    hidden: set[tuple[str, str]] = set()
    ratings: dict[tuple[str, str], int] = {}
    for key, pair in pairs.items():
        booked = any(live for _, live in pair["bookings"])
        rating = pair["rating"][1] if pair["rating"] else 0
        value = (
            1.0 * min(pair["views"], 3)
            + 2.0 * pair["saved"]
            + 5.0 * booked
            + (RATING_WEIGHTS[rating - 1] if rating else 0.0)
        )
        if pair["dismissed"]:
            value = 0.0
        if value > 0:
            confidence[key] = value
        if booked or pair["dismissed"] or rating:
            hidden.add(key)
        if rating:
            ratings[key] = rating
    return {"confidence": confidence, "hidden": hidden, "ratings": ratings, "searches": searches}


def stored_matrix(settings: Settings) -> dict[str, Any]:
    """The same view of what the consumer stored, through the store's snapshot and model."""
    store = Store(connect(settings.redis_url), settings.key_prefix)
    snapshot = store.snapshot(settings.topic_interactions)
    log, users, events = snapshot.log, snapshot.user_ids, snapshot.event_ids
    result = aggregate(log)
    confidence = {}
    coo = result.confidence.tocoo()
    for u, e, v in zip(coo.row, coo.col, coo.data, strict=True):
        confidence[(users[u], events[e])] = float(v)
    hidden_coo = result.hidden.tocoo()
    hidden = {(users[u], events[e]) for u, e in zip(hidden_coo.row, hidden_coo.col, strict=True)}
    ratings = {
        (users[u], events[e]): int(v)
        for u, e, v in zip(
            result.rating_user, result.rating_event, result.rating_value, strict=True
        )
    }
    searches = {user: list(reversed(store.user_searches(settings.topic_interactions, user)))
                for user in users}  # fmt: skip
    store.client.close()
    return {
        "confidence": confidence,
        "hidden": hidden,
        "ratings": ratings,
        "searches": {u: q for u, q in searches.items() if q},
    }


def assert_same_matrix(expected: dict[str, Any], stored: dict[str, Any], cap: int = 20) -> None:
    assert stored["hidden"] == expected["hidden"]
    assert stored["ratings"] == expected["ratings"]
    assert stored["confidence"].keys() == expected["confidence"].keys()
    for pair, value in expected["confidence"].items():
        assert abs(stored["confidence"][pair] - value) < 1e-4, pair
    wanted = {u: q[-cap:] for u, q in expected["searches"].items()}
    differing = sorted(u for u in wanted.keys() | stored["searches"].keys()
                       if wanted.get(u) != stored["searches"].get(u))  # fmt: skip
    assert not differing, [(u, wanted.get(u), stored["searches"].get(u)) for u in differing[:5]]


def expected_counts(messages: Iterable[Message]) -> dict[str, int]:
    """What the consumer's counters must read: first-seen valid messages applied, re-sent
    ones de-duplicated, invalid ones dead-lettered; each exactly once, whatever crashed."""
    seen: set[str] = set()
    counts = {"processed": 0, "deduplicated": 0, "dead_lettered": 0}
    for message in messages:
        if not message.valid:
            counts["dead_lettered"] += 1
            continue
        assert message.body is not None
        first = message.body["interaction_id"] not in seen
        seen.add(message.body["interaction_id"])
        counts["processed" if first else "deduplicated"] += 1
    return counts


def stored_counts(settings: Settings) -> dict[str, int]:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    counts = {"processed": 0, "deduplicated": 0, "dead_lettered": 0}
    for partition in range(settings.topic_partitions):
        stats = store.stats(settings.topic_interactions, partition)
        for name in counts:
            counts[name] += int(stats.get(name, 0))
    store.client.close()
    return counts


def expected_rows(messages: Iterable[Message]) -> dict[str, list[tuple[str, int, int]]]:
    """Per user, every first-seen valid interaction but searches as (event, type, time),
    sorted: the rows exactly, where the aggregate view saturates (views, bookings)."""
    seen: set[str] = set()
    rows: dict[str, list[tuple[str, int, int]]] = {}
    for message in messages:
        body = message.body
        if not message.valid or body is None or body["interaction_id"] in seen:
            continue
        seen.add(body["interaction_id"])
        if body["type"] == "search":
            continue
        stamp = int(datetime.fromisoformat(body["occurred_at"]).timestamp())
        rows.setdefault(body["user_id"], []).append(
            (body["event_id"], TYPE_CODES[body["type"]], stamp)
        )
    return {user: sorted(row) for user, row in rows.items()}


def stored_rows(settings: Settings) -> dict[str, list[tuple[str, int, int]]]:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    topic = settings.topic_interactions
    event_ids = {p: store.partition_event_ids(topic, p) for p in store.owner_partitions()}
    rows = {}
    for user_id in store.user_ids():
        found = store.user_row(topic, user_id)
        if found is None or not len(found[1]):
            continue
        partition, records = found
        rows[user_id] = sorted(
            (event_ids[partition][int(r["event"])], int(r["type"]), int(r["time"])) for r in records
        )
    store.client.close()
    return rows


def assert_exactly_once(messages: list[Message], settings: Settings) -> None:
    """Exact counters and rows: a message applied twice or lost shows here."""
    assert stored_counts(settings) == expected_counts(messages)
    expected, stored = expected_rows(messages), stored_rows(settings)
    assert stored.keys() == expected.keys()
    differing = [u for u in expected if stored[u] != expected[u]]
    assert not differing, [(u, len(expected[u]), len(stored[u])) for u in differing[:5]]
