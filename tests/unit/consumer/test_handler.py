"""The message handlers, without Kafka or Redis: validation, ids, records, dead letters."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from eventrec.consumer.handler import pack_interaction, prepare_entities, prepare_interactions
from eventrec.model.records import (
    RECORD_DTYPE,
    TYPE_BOOKING,
    TYPE_RATING,
    TYPE_VIEW,
    booking_hash,
)
from eventrec.schemas import Interaction
from eventrec.store import dedup_hash


@dataclass
class FakeMessage:
    offset: int
    key: bytes | None
    value: bytes | None


class Owners:
    """The owner map in memory, as the store keeps it in Redis: the first claim wins."""

    def __init__(self, home: dict[str, int] | None = None) -> None:
        self.owner: dict[str, int] = dict(home or {})

    def claim(self, user_ids: list[str], partition: int) -> list[int]:
        return [self.owner.setdefault(u, partition) for u in user_ids]


def message(offset: int, **fields: Any) -> FakeMessage:
    body = {
        "schema_version": 1,
        "interaction_id": f"i-{offset}",
        "user_id": "u-1",
        "event_id": "e-1",
        "type": "view",
        "occurred_at": "2026-11-26T10:00:00+00:00",
        **fields,
    }
    body = {k: v for k, v in body.items() if v is not None}
    return FakeMessage(offset, str(body["user_id"]).encode(), json.dumps(body).encode())


def test_valid_messages_become_records_grouped_by_user() -> None:
    ids = Owners()
    messages = [
        message(100),
        message(101, user_id="u-2", event_id="e-2", type="rating", rating=4),
        message(102, type="booking", booking_id="b-7", quantity=3),
        message(103, type="search", event_id=None, query="jazz"),
    ]
    prepared = prepare_interactions("interactions", 1, 100, messages, ids.claim)
    batch = prepared.batch
    assert prepared.dead_letters == []
    assert (batch.expected_offset, batch.next_offset) == (100, 104)
    assert batch.row_users == ["u-1", "u-2"]
    assert batch.slots == [1, 2, 1]
    # Records name events by their 1-based place in the batch's list; the step resolves it.
    assert batch.event_ids == ["e-1", "e-2"]
    records = np.frombuffer(b"".join(batch.payloads), dtype=RECORD_DTYPE)
    assert records["type"].tolist() == [TYPE_VIEW, TYPE_RATING, TYPE_BOOKING]
    assert records["value"].tolist() == [1, 4, 3]
    assert records["event"].tolist() == [1, 2, 1]
    assert records["aux"].tolist() == [0, 0, booking_hash("b-7")]
    assert batch.hashes[0] == dedup_hash("u-1", "i-100")
    assert batch.searches == [(1, dedup_hash("u-1", "i-103"), "jazz")]
    assert batch.search_users == ["u-1"]


def test_the_same_interaction_id_of_two_users_gives_two_keys() -> None:
    assert dedup_hash("u-1", "i-0001") != dedup_hash("u-2", "i-0001")
    assert dedup_hash("u-1", "i-0001") == dedup_hash("u-1", "i-0001")


def test_invalid_messages_become_dead_letters_and_the_batch_goes_on() -> None:
    ids = Owners()
    messages = [
        message(7, type="rating"),
        FakeMessage(8, b"u-1", b"{broken"),
        message(9),
        FakeMessage(10, b"u-1", None),
    ]
    prepared = prepare_interactions("interactions", 0, 7, messages, ids.claim)
    reasons = {d.offset: d.reason for d in prepared.dead_letters}
    assert set(reasons) == {7, 8, 10}
    assert "rating: required for type 'rating'" in reasons[7]
    assert "Invalid JSON" in reasons[8]
    assert prepared.batch.dead_lettered == 3
    assert len(prepared.batch.payloads) == 1
    assert prepared.batch.next_offset == 11
    letter = prepared.dead_letters[1]
    assert (letter.topic, letter.partition, letter.value) == ("interactions", 0, b"{broken")


def test_a_user_owned_elsewhere_is_routed_and_still_names_its_event() -> None:
    ids = Owners(home={"u-1": 4})
    messages = [message(0), message(1, user_id="u-2", event_id="e-2")]
    prepared = prepare_interactions("interactions", 2, 0, messages, ids.claim)
    assert prepared.dead_letters == []
    assert [(r.owner, r.message.offset) for r in prepared.routes] == [(4, 0)]
    assert prepared.batch.routed == 1
    assert prepared.batch.row_users == ["u-2"]
    # Every valid message's event is named, so local indices follow the log alone.
    assert prepared.batch.event_ids == ["e-1", "e-2"]
    assert ids.owner == {"u-1": 4, "u-2": 2}


def test_a_timestamp_beyond_the_allowed_skew_is_dead_lettered_with_the_reason() -> None:
    messages = [
        message(0, occurred_at="2026-11-26T10:10:00Z"),
        message(1, occurred_at="2026-11-26T10:10:01Z"),
        message(2, occurred_at="9999-01-01T00:00:00Z"),
    ]
    latest = 1795687800.0  # 2026-11-26T10:10:00Z
    prepared = prepare_interactions("interactions", 0, 0, messages, Owners().claim, latest)
    assert [d.offset for d in prepared.dead_letters] == [1, 2]
    assert all("EVENTREC_MAX_CLOCK_SKEW_SECONDS" in d.reason for d in prepared.dead_letters)
    assert prepared.dead_letters[0].reason.startswith("occurred_at: 1 s later")
    assert len(prepared.batch.slots) == 1


def test_every_valid_spelling_gives_the_same_batch() -> None:
    # The first spellings take the consumer's fast path; the others only pydantic reads.
    spellings = [
        ("2026-11-26T10:00:59.900Z", "2026-11-26T15:30:00+05:30"),
        ("2026-11-26 10:00:59.900Z", "2026-11-26T15:30:00+0530"),
    ]
    batches = []
    for first, second in spellings:
        messages = [
            message(0, occurred_at=first, type="booking", booking_id="b-7", quantity=2),
            message(1, occurred_at=second, user_id="u-2", type="rating", rating=5),
            message(2, occurred_at=second, type="search", event_id=None, query="jazz"),
        ]
        ids = Owners()
        prepared = prepare_interactions("interactions", 0, 0, messages, ids.claim)
        assert prepared.dead_letters == []
        batches.append(prepared.batch)
    fast, slow = batches
    assert fast == slow
    records = np.frombuffer(b"".join(fast.payloads), dtype=RECORD_DTYPE)
    assert records["time"].tolist() == [1795687259, 1795687200]
    assert records["value"].tolist() == [2, 5]


def test_record_time_is_whole_seconds_utc() -> None:
    interaction = Interaction.model_validate_json(
        message(0, occurred_at="2026-11-26T15:30:59.900+05:30").value or b""
    )
    record = np.frombuffer(pack_interaction(interaction, 9), dtype=RECORD_DTYPE)[0]
    assert int(record["time"]) == 1795687259  # 2026-11-26T10:00:59Z
    assert int(record["event"]) == 9


def test_catalog_upserts_and_tombstones() -> None:
    event = {
        "schema_version": 1,
        "event_id": "e-1",
        "title": "Galle Literary Evening",
        "category": "art",
        "city": "Galle",
        "price": {"amount": 1500},
        "starts_at": "2027-01-20T18:00:00+05:30",
    }
    prepared = prepare_entities(
        "events",
        "events",
        0,
        [
            FakeMessage(0, b"e-1", json.dumps(event).encode()),
            FakeMessage(1, b"e-2", None),
            FakeMessage(2, b"e-3", b'{"schema_version": 1}'),
            FakeMessage(3, None, json.dumps(event).encode()),
            FakeMessage(4, None, None),
        ],
    )
    assert [c[0] for c in prepared.changes] == ["e-1", "e-2"]
    assert json.loads(prepared.changes[0][1] or b"")["city"] == "Galle"
    assert prepared.changes[1][1] is None
    assert len(prepared.dead_letters) == 3
    assert "event_id: Field required" in prepared.dead_letters[0].reason
    # Keyless catalog messages could never be replaced or deleted by key.
    for letter in prepared.dead_letters[1:]:
        assert letter.reason.startswith("key: catalog messages need the event_id as their key")
        assert letter.topic == "events"
        assert dict(letter.headers())["eventrec.topic"] == b"events"
