"""An event's organizer, performers and series: optional on the wire, kept to serving's catalog."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from eventrec.consumer.handler import prepare_entities
from eventrec.errors import InvalidMessageError
from eventrec.schemas import decode_event
from eventrec.serving.catalog import Catalog

EVENT: dict[str, Any] = {
    "schema_version": 1,
    "event_id": "e-1",
    "title": "The Coral Tide Live in Galle",
    "category": "music",
    "city": "Galle",
    "price": {"amount": 3000, "currency": "LKR"},
    "starts_at": "2026-12-10T19:00:00+05:30",
    "organizer": "Lotus Live",
    "performers": ["The Coral Tide", "Kasun Perera"],
    "series": "Coral Jazz Sessions",
}


@dataclass
class StoredMessage:
    offset: int
    key: bytes | None
    value: bytes | None


def _message(document: dict[str, Any]) -> StoredMessage:
    return StoredMessage(0, document["event_id"].encode(), json.dumps(document).encode())


def test_the_fields_are_optional_and_validated() -> None:
    bare = {k: v for k, v in EVENT.items() if k not in ("organizer", "performers", "series")}
    event = decode_event(b"e-1", json.dumps(bare).encode())
    assert event is not None
    assert (event.organizer, event.performers, event.series) == (None, [], None)
    full = decode_event(b"e-1", json.dumps(EVENT).encode())
    assert full is not None
    assert full.performers == ["The Coral Tide", "Kasun Perera"]
    with pytest.raises(InvalidMessageError, match="performers"):
        decode_event(b"e-1", json.dumps({**EVENT, "performers": [""]}).encode())
    with pytest.raises(InvalidMessageError, match="headliner"):
        decode_event(b"e-1", json.dumps({**EVENT, "headliner": "x"}).encode())


def test_the_consumer_stores_them_and_serving_shows_them() -> None:
    prepared = prepare_entities("events", "events", 0, [_message(EVENT)])
    assert not prepared.dead_letters
    ((event_id, document),) = prepared.changes
    assert document is not None
    stored = json.loads(document)
    assert stored["organizer"] == "Lotus Live"
    assert stored["series"] == "Coral Jazz Sessions"
    catalog = Catalog.from_documents({event_id: document})
    item = catalog.item(0, 1.0, "trending")
    assert item["performers"] == ["The Coral Tide", "Kasun Perera"]
    assert item["organizer"] == "Lotus Live"
    assert item["series"] == "Coral Jazz Sessions"


def test_an_event_without_them_is_served_as_before() -> None:
    bare = {k: v for k, v in EVENT.items() if k not in ("organizer", "performers", "series")}
    prepared = prepare_entities("events", "events", 0, [_message(bare)])
    ((event_id, document),) = prepared.changes
    assert document is not None
    item = Catalog.from_documents({event_id: document}).item(0, 1.0, "trending")
    assert not {"organizer", "performers", "series"} & set(item)
