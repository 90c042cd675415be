"""The producer helper refuses exactly what the consumer's decoder would dead-letter."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventrec.client import Producer, check, key_for, message_bytes
from eventrec.config import Settings
from eventrec.errors import DeliveryError, InvalidMessageError
from eventrec.schemas import Event, Interaction
from eventrec.schemas.decode import decode_event, decode_interaction_fields, decode_profile


class FakeFuture:
    def __init__(self) -> None:
        self.errbacks: list[Any] = []

    def add_errback(self, callback: Any) -> FakeFuture:
        self.errbacks.append(callback)
        return self


class FakeKafka:
    """Records what was sent; ``fail`` makes the next flush report these as failed."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None, Any]] = []
        self.futures: list[FakeFuture] = []
        self.fail_next = False
        self.closed = False

    def send(self, topic: str, key: bytes | None, value: bytes | None, headers: Any) -> FakeFuture:
        self.sent.append((topic, key, value, headers))
        future = FakeFuture()
        self.futures.append(future)
        return future

    def flush(self, timeout: float | None = None) -> None:
        if self.fail_next:
            for future in self.futures:
                for errback in future.errbacks:
                    errback(RuntimeError("broker said no"))
        self.futures = []

    def close(self, timeout: float | None = None) -> None:
        self.closed = True


def producer() -> tuple[Producer, FakeKafka]:
    kafka = FakeKafka()
    return Producer(Settings(), kafka=kafka), kafka  # type: ignore[arg-type]


def consumer_reason(key: bytes | None, value: bytes) -> str | None:
    """The consumer's dead-letter reason, with its clock and default allowed skew, or None."""
    latest = time.time() + Settings().max_clock_skew_seconds
    try:
        decode_interaction_fields(key, value, latest=latest)
    except InvalidMessageError as exc:
        return exc.reason
    return None


ids = st.text(min_size=1, max_size=8) | st.just("u-1")
odd_texts = st.text(max_size=6) | st.text(min_size=120, max_size=140)
moments = st.sampled_from(
    [
        "2026-11-26T10:00:00Z",
        "2026-11-26T10:00:00.123456+05:30",
        datetime(2026, 11, 26, 10, tzinfo=UTC),
        datetime(2026, 11, 26, 10, tzinfo=timezone(timedelta(hours=5, minutes=30))),
    ]
)
odd_moments = st.sampled_from(
    ["2026-11-26T10:00:00", "2026-11-26 10:00", "nope", datetime(2026, 11, 26, 10), 1_700_000_000,
     "2999-01-01T00:00:00Z", datetime(2999, 1, 1, tzinfo=UTC)]
)  # fmt: skip
KINDS = ["view", "save", "booking", "booking_cancelled", "rating", "dismiss", "search"]


@st.composite
def valid_interactions(draw: st.DrawFn) -> dict[str, Any]:
    """A message the consumer accepts, of any type, with any of its optional fields."""
    kind = draw(st.sampled_from(KINDS))
    body: dict[str, Any] = {
        "schema_version": 1,
        "interaction_id": draw(ids),
        "user_id": draw(ids),
        "type": kind,
        "occurred_at": draw(moments),
    }
    if kind == "search":
        body["query"] = draw(st.text(min_size=1, max_size=20))
    else:
        body["event_id"] = draw(ids)
    if kind == "rating":
        body["rating"] = draw(st.integers(1, 5))
    if kind in ("booking", "booking_cancelled") and draw(st.booleans()):
        body["booking_id"] = draw(ids)
        body["quantity"] = draw(st.integers(1, 1000))
    if draw(st.booleans()):
        body["recommendation_id"] = draw(ids)
    return body


odd_values = (
    st.none()
    | odd_texts
    | odd_moments
    | st.integers(-1, 1002)
    | st.just(2**70)
    | st.just(4.0)
    | st.sampled_from([*KINDS, "x", 2, "1"])
)
fields = st.sampled_from(
    ["schema_version", "interaction_id", "user_id", "type", "occurred_at", "event_id", "rating",
     "query", "booking_id", "quantity", "recommendation_id", "extra"]
)  # fmt: skip


@st.composite
def interactions(draw: st.DrawFn) -> dict[str, Any]:
    """Valid messages, and valid ones with one to three fields spoiled, dropped or added."""
    body = draw(valid_interactions())
    for _ in range(draw(st.integers(0, 3))):
        name = draw(fields)
        if draw(st.booleans()):
            body.pop(name, None)
        else:
            body[name] = draw(odd_values)
    return body


@settings(max_examples=600, deadline=None)
@given(body=interactions())
def test_the_producer_refuses_what_the_consumer_would_dead_letter(body: dict[str, Any]) -> None:
    client, kafka = producer()
    value = message_bytes(body)
    would_refuse = consumer_reason(None, value)
    if would_refuse is not None:
        with pytest.raises(InvalidMessageError) as refused:
            client.send_interaction(body)
        assert refused.value.reason == would_refuse
        assert kafka.sent == []
        return
    client.send_interaction(body)
    [(topic, key, sent, _)] = kafka.sent
    assert topic == "interactions"
    assert sent == value
    # What the consumer reads back, with the key it was sent with, is valid and keyed right.
    assert consumer_reason(key, sent) is None
    assert key == decode_interaction_fields(key, sent).user_id.encode()


def test_a_valid_interaction_is_sent_keyed_by_its_user() -> None:
    accepted = {"schema_version": 1, "interaction_id": "i-1", "user_id": "u-1"}
    accepted |= {"type": "rating", "event_id": "ev-1", "rating": 4}
    accepted |= {"occurred_at": datetime(2026, 11, 26, 10, tzinfo=UTC)}
    client, kafka = producer()
    client.send_interaction(accepted)
    assert kafka.sent[0][1] == b"u-1"


def test_a_refusal_names_the_field_as_the_dead_letter_would() -> None:
    client, _ = producer()
    body = {"schema_version": 1, "interaction_id": "i-1", "user_id": "u-1", "event_id": "e"}
    body |= {"type": "rating", "occurred_at": "2026-11-26T10:00:00Z"}
    with pytest.raises(InvalidMessageError) as refused:
        client.send_interaction(body)
    assert refused.value.reason == "rating: required for type 'rating'"
    naive = body | {"rating": 5, "occurred_at": datetime(2026, 11, 26, 10)}
    with pytest.raises(InvalidMessageError, match="occurred_at: Input should have timezone info"):
        client.send_interaction(naive)


def test_catalog_and_profiles_are_keyed_by_their_ids() -> None:
    client, kafka = producer()
    event = Event(
        schema_version=1,
        event_id="ev-1",
        title="Jazz night",
        category="music",
        city="Kandy",
        price={"amount": 1500},  # type: ignore[arg-type]
        starts_at=datetime(2027, 1, 5, 19, tzinfo=UTC),
    )
    client.send_event(event)
    client.send_profile({"schema_version": 1, "user_id": "u-9", "city": "Galle"})
    client.delete_event("ev-1")
    client.delete_profile("u-9")
    assert [(topic, key) for topic, key, _, _ in kafka.sent] == [
        ("events", b"ev-1"),
        ("users", b"u-9"),
        ("events", b"ev-1"),
        ("users", b"u-9"),
    ]
    assert decode_event(b"ev-1", kafka.sent[0][2]) == event
    assert decode_profile(b"u-9", kafka.sent[1][2]) is not None
    assert [value for _, _, value, _ in kafka.sent[2:]] == [None, None]
    with pytest.raises(InvalidMessageError, match="1-128 characters"):
        client.delete_event("")


def test_a_model_is_sent_as_its_canonical_json() -> None:
    client, kafka = producer()
    interaction = Interaction(
        schema_version=1,
        interaction_id="i-7",
        user_id="u-7",
        event_id="ev-7",
        type="save",  # type: ignore[arg-type]
        occurred_at=datetime(2026, 11, 26, 10, tzinfo=UTC),
    )
    client.send_interaction(interaction)
    [(_, key, value, _)] = kafka.sent
    assert key == b"u-7"
    assert orjson.loads(value or b"")["occurred_at"] == "2026-11-26T10:00:00Z"


def test_a_replays_original_key_must_be_the_id() -> None:
    value = message_bytes(
        {"schema_version": 1, "interaction_id": "i-1", "user_id": "u-1", "event_id": "e-1",
         "type": "view", "occurred_at": "2026-11-26T10:00:00Z"}
    )  # fmt: skip
    assert check("interactions", None, value) == b"u-1"
    assert check("interactions", b"u-1", value) == b"u-1"
    with pytest.raises(InvalidMessageError, match="does not match user_id 'u-1'"):
        check("interactions", b"u-2", value)


def test_an_interaction_dated_ahead_of_the_allowed_skew_is_refused() -> None:
    client, kafka = producer()
    body = {"schema_version": 1, "interaction_id": "i-1", "user_id": "u-1", "event_id": "e-1"}
    soon = datetime.now(UTC) + timedelta(minutes=5)
    client.send_interaction(body | {"type": "view", "occurred_at": soon})
    later = datetime.now(UTC) + timedelta(hours=1)
    with pytest.raises(InvalidMessageError, match="later than the consumer's clock plus"):
        client.send_interaction(body | {"type": "view", "occurred_at": later})
    assert len(kafka.sent) == 1


def test_too_large_a_message_is_refused_with_its_size() -> None:
    with pytest.raises(InvalidMessageError, match="value: 2,000,001 bytes, over the 1,000,000"):
        key_for("interactions", b" " * 2_000_001)


def test_unserialisable_mapping_is_refused() -> None:
    client, _ = producer()
    with pytest.raises(InvalidMessageError, match="not serialisable as JSON"):
        client.send_interaction({"user_id": object()})


def test_flush_raises_for_what_kafka_did_not_acknowledge() -> None:
    client, kafka = producer()
    body = {"schema_version": 1, "interaction_id": "i-1", "user_id": "u-1", "event_id": "e-1"}
    body |= {"type": "view", "occurred_at": "2026-11-26T10:00:00Z"}
    client.send_interaction(body)
    client.send_interaction(body | {"interaction_id": "i-2"})
    kafka.fail_next = True
    with pytest.raises(DeliveryError, match="2 messages were not delivered") as failed:
        client.flush()
    assert [u.value for u in failed.value.undelivered] == [
        message_bytes(body),
        message_bytes(body | {"interaction_id": "i-2"}),
    ]
    kafka.fail_next = False
    client.flush()  # reported once, then forgotten


def test_a_catalog_message_without_its_id_is_refused_for_the_id_not_the_key() -> None:
    client, kafka = producer()
    with pytest.raises(InvalidMessageError) as refused:
        client.send_event({"schema_version": 1, "title": "Jazz night"})
    assert refused.value.reason.startswith("event_id: Field required")
    with pytest.raises(InvalidMessageError, match="Invalid JSON"):
        client.send_profile(b"{not json")
    assert kafka.sent == []
