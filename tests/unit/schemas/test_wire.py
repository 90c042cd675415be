"""Every rule of the wire formats, valid and invalid; each rejection names its field."""

from __future__ import annotations

import json
from typing import Any

import pytest

from eventrec.errors import InvalidMessageError
from eventrec.schemas import (
    DeadLetter,
    Event,
    Interaction,
    InteractionType,
    UserProfile,
    decode_event,
    decode_interaction,
    decode_profile,
    encode,
)


def interaction(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "schema_version": 1,
        "interaction_id": "i-1",
        "user_id": "u-1",
        "event_id": "e-1",
        "type": "view",
        "occurred_at": "2026-11-26T10:00:00+05:30",
    }
    message.update(changes)
    return {key: value for key, value in message.items() if value is not ...}


def event(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "schema_version": 1,
        "event_id": "e-1",
        "title": "Colombo Jazz Night",
        "category": "music",
        "tags": ["jazz", "live"],
        "venue": "Nelum Pokuna",
        "city": "Colombo",
        "price": {"amount": 4500, "currency": "LKR"},
        "starts_at": "2027-01-10T19:00:00+05:30",
        "ends_at": "2027-01-10T22:00:00+05:30",
        "status": "scheduled",
    }
    message.update(changes)
    return {key: value for key, value in message.items() if value is not ...}


def profile(**changes: Any) -> dict[str, Any]:
    message: dict[str, Any] = {
        "schema_version": 1,
        "user_id": "u-1",
        "age_band": "25-34",
        "city": "Kandy",
        "budget": {"min": 0, "max": 10000},
        "preferred_categories": ["music", "food"],
        "interests": ["jazz"],
    }
    message.update(changes)
    return {key: value for key, value in message.items() if value is not ...}


def as_bytes(message: dict[str, Any]) -> bytes:
    return json.dumps(message).encode()


def rejected_interaction(message: dict[str, Any]) -> str:
    with pytest.raises(InvalidMessageError) as caught:
        decode_interaction(b"u-1", as_bytes(message))
    return caught.value.reason


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"type": "save"},
        {"type": "booking", "booking_id": "b-1", "quantity": 2},
        {"type": "booking_cancelled", "booking_id": "b-1"},
        {"type": "rating", "rating": 5},
        {"type": "rating", "rating": 1},
        {"type": "dismiss"},
        {"type": "search", "event_id": ..., "query": "jazz in colombo"},
        {"recommendation_id": "r-9"},
        {"occurred_at": "2026-11-26T04:30:00Z"},
    ],
)
def test_valid_interactions_decode(changes: dict[str, Any]) -> None:
    decoded = decode_interaction(b"u-1", as_bytes(interaction(**changes)))
    assert decoded.user_id == "u-1"
    assert decoded.occurred_at.utcoffset() is not None
    assert decode_interaction(b"u-1", encode(decoded)) == decoded


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"type": "like"}, "type", "Input should be"),
        ({"type": "rating"}, "rating", "required for type 'rating'"),
        ({"type": "rating", "rating": 0}, "rating", "greater than or equal to 1"),
        ({"type": "rating", "rating": 6}, "rating", "less than or equal to 5"),
        ({"type": "rating", "rating": 4.5}, "rating", "valid integer"),
        ({"type": "rating", "rating": "4"}, "rating", "valid integer"),
        ({"rating": 3}, "rating", "only allowed for type 'rating'"),
        ({"type": "search", "event_id": ...}, "query", "required for type 'search'"),
        ({"query": "jazz"}, "query", "only allowed for type 'search'"),
        ({"booking_id": "b-1"}, "booking_id", "only allowed for booking types"),
        ({"type": "booking", "quantity": 0}, "quantity", "greater than or equal to 1"),
        ({"event_id": ...}, "event_id", "required for type 'view'"),
        ({"interaction_id": ...}, "interaction_id", "Field required"),
        ({"user_id": ...}, "user_id", "Field required"),
        ({"occurred_at": ...}, "occurred_at", "Field required"),
        ({"schema_version": ...}, "schema_version", "Field required"),
        ({"schema_version": 2}, "schema_version", "Input should be 1"),
        ({"occurred_at": "2026-11-26T10:00:00"}, "occurred_at", "timezone"),
        ({"occurred_at": "yesterday"}, "occurred_at", "datetime"),
        ({"interaction_id": ""}, "interaction_id", "at least 1 character"),
        ({"user_id": "u" * 129}, "user_id", "at most 128 characters"),
        ({"event_id": ""}, "event_id", "at least 1 character"),
        ({"colour": "blue"}, "colour", "Extra inputs are not permitted"),
    ],
)
def test_invalid_interactions_name_the_field(
    changes: dict[str, Any], field: str, words: str
) -> None:
    reason = rejected_interaction(interaction(**changes))
    assert f"{field}: " in reason
    assert words in reason


def test_interaction_key_must_be_the_user_id() -> None:
    with pytest.raises(InvalidMessageError, match="key: 'u-2' does not match user_id 'u-1'"):
        decode_interaction(b"u-2", as_bytes(interaction()))


def test_interaction_without_key_is_accepted() -> None:
    assert decode_interaction(None, as_bytes(interaction())).user_id == "u-1"


@pytest.mark.parametrize(
    ("value", "words"),
    [
        (None, "value: null is not an interaction"),
        (b"", "value: Invalid JSON"),
        (b"{not json", "value: Invalid JSON"),
        (b"\xff\xfe\x00", "value: Invalid JSON"),
        (b"[1, 2]", "value: Input should be an object"),
        (b"null", "value: Input should be an object"),
    ],
)
def test_undecodable_values_are_rejected(value: bytes | None, words: str) -> None:
    with pytest.raises(InvalidMessageError, match=words):
        decode_interaction(b"u-1", value)


def test_interaction_types_are_the_seven_of_the_design() -> None:
    assert {kind.value for kind in InteractionType} == {
        "view",
        "save",
        "booking",
        "booking_cancelled",
        "rating",
        "dismiss",
        "search",
    }


def test_valid_event_decodes_and_round_trips() -> None:
    decoded = decode_event(b"e-1", as_bytes(event()))
    assert isinstance(decoded, Event)
    assert decoded.price.currency == "LKR"
    assert decode_event(b"e-1", encode(decoded)) == decoded


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"title": ...}, "title", "Field required"),
        ({"title": ""}, "title", "at least 1 character"),
        ({"status": "postponed"}, "status", "Input should be"),
        ({"price": {"amount": -1}}, "price.amount", "greater than or equal to 0"),
        ({"price": {"amount": 10, "currency": "rupees"}}, "price.currency", "pattern"),
        ({"starts_at": "2027-01-10T19:00:00"}, "starts_at", "timezone"),
        ({"ends_at": "2027-01-09T19:00:00+05:30"}, "ends_at", "must not be before starts_at"),
        ({"avg_rating": 7}, "avg_rating", "less than or equal to 5"),
        ({"total_bookings": -3}, "total_bookings", "greater than or equal to 0"),
        ({"event_id": "e" * 129}, "event_id", "at most 128 characters"),
        ({"organiser": "x"}, "organiser", "Extra inputs are not permitted"),
    ],
)
def test_invalid_events_name_the_field(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        decode_event(b"e-1", as_bytes(event(**changes)))
    assert f"{field}: " in caught.value.reason
    assert words in caught.value.reason


def test_catalog_and_profile_tombstones_are_deletions() -> None:
    assert decode_event(b"e-1", None) is None
    assert decode_profile(b"u-1", None) is None


def test_catalog_and_profile_messages_without_key_are_rejected() -> None:
    with pytest.raises(InvalidMessageError, match="key: catalog messages need the event_id"):
        decode_event(None, None)
    with pytest.raises(InvalidMessageError, match="key: catalog messages need the event_id"):
        decode_event(None, as_bytes(event()))
    with pytest.raises(InvalidMessageError, match="key: profile messages need the user_id"):
        decode_profile(b"", None)
    with pytest.raises(InvalidMessageError, match="key: profile messages need the user_id"):
        decode_profile(None, as_bytes(profile()))


def test_valid_profile_decodes() -> None:
    decoded = decode_profile(b"u-1", as_bytes(profile()))
    assert isinstance(decoded, UserProfile)
    assert decoded.preferred_categories == ["music", "food"]
    minimal = decode_profile(b"u-2", as_bytes({"schema_version": 1, "user_id": "u-2"}))
    assert minimal is not None
    assert minimal.city is None


@pytest.mark.parametrize(
    ("changes", "field", "words"),
    [
        ({"age_band": "30"}, "age_band", "Input should be"),
        ({"budget": {"min": 500, "max": 100}}, "budget.max", "must not be below min"),
        ({"user_id": ""}, "user_id", "at least 1 character"),
        ({"nickname": "x"}, "nickname", "Extra inputs are not permitted"),
    ],
)
def test_invalid_profiles_name_the_field(changes: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(InvalidMessageError) as caught:
        decode_profile(b"u-1", as_bytes(profile(**changes)))
    assert f"{field}: " in caught.value.reason
    assert words in caught.value.reason


def test_dead_letter_headers_round_trip() -> None:
    letter = DeadLetter.of(
        reason="rating: required for type 'rating'",
        topic="interactions",
        partition=3,
        offset=42,
        key=b"u-1",
        value=b'{"broken": true}',
    )
    headers = letter.headers()
    assert ("eventrec.reason", b"rating: required for type 'rating'") in headers
    assert ("eventrec.partition", b"3") in headers
    assert DeadLetter.from_kafka(b"u-1", b'{"broken": true}', headers) == letter


def test_model_is_immutable() -> None:
    decoded = Interaction.model_validate(interaction())
    with pytest.raises(ValueError, match="frozen"):
        decoded.user_id = "someone-else"  # type: ignore[misc]
