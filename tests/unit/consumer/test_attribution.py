"""The attribution handlers: impressions and outcomes to a store batch, interactions to outcomes."""

from __future__ import annotations

import json
from dataclasses import dataclass

from eventrec.consumer.attribution import outcomes_of, prepare_attribution
from eventrec.model.impressions import pack_impression, pack_pending
from eventrec.store.store import interaction_hash


@dataclass
class Msg:
    offset: int
    key: bytes | None
    value: bytes | None


def _impression(user: str = "u1", request: str = "r1") -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "kind": "impression",
            "request_id": request,
            "user_id": user,
            "experiment": "exp",
            "experiment_code": 4,
            "variant": "b",
            "variant_index": 1,
            "model_version": "v000001",
            "strategy": "personalised",
            "event_ids": ["e1", "e2", "e3"],
            "shown_at": "2026-11-30T10:00:00+00:00",
        }
    ).encode()


def _interaction(kind: str = "view", recommendation: str | None = "r1", **extra: object) -> bytes:
    body: dict[str, object] = {
        "schema_version": 1,
        "interaction_id": "i-1",
        "user_id": "u1",
        "event_id": "e2",
        "type": kind,
        "occurred_at": "2026-11-30T10:05:00+00:00",
        **extra,
    }
    if recommendation is not None:
        body["recommendation_id"] = recommendation
    return json.dumps(body).encode()


def test_impressions_and_outcomes_become_compact_items() -> None:
    outcome = outcomes_of("impressions", [Msg(0, b"u1", _interaction())])[0]
    assert (outcome.topic, outcome.key, outcome.partition) == ("impressions", b"u1", None)
    prepared = prepare_attribution(
        "impressions", 2, 10, [Msg(10, b"u1", _impression()), Msg(11, b"u1", outcome.value)]
    )
    batch = prepared.batch
    assert (batch.expected_offset, batch.next_offset, prepared.dead_letters) == (10, 12, [])
    shown_at = 1_796_032_800  # 2026-11-30T10:00:00Z
    assert batch.items[0] == (
        "i",
        "u1",
        pack_impression("u1", "r1", shown_at, 4, 1, ["e1", "e2", "e3"]),
    )
    assert batch.items[1] == (
        "o",
        "u1",
        interaction_hash("u1\x00i-1") + pack_pending("u1", "r1", "e2", shown_at + 300, "view"),
    )


def test_invalid_messages_are_dead_lettered_with_the_reason() -> None:
    prepared = prepare_attribution(
        "impressions",
        0,
        0,
        [
            Msg(0, b"u1", b"not json"),
            Msg(1, b"u1", b'{"kind": "click"}'),
            Msg(2, b"someone-else", _impression()),
            Msg(3, b"u1", _impression().replace(b'"event_ids"', b'"events"')),
            Msg(4, b"u1", _impression()),
        ],
    )
    reasons = [letter.reason for letter in prepared.dead_letters]
    assert reasons[0] == "value: not a JSON object"
    assert reasons[1] == "kind: expected 'impression' or 'outcome'"
    assert reasons[2] == "key: 'someone-else' does not match user_id 'u1'"
    assert "event_ids" in reasons[3]
    assert [item[0] for item in prepared.batch.items] == ["i"]
    assert prepared.batch.dead_lettered == 4


def test_only_attributable_interactions_become_outcomes() -> None:
    messages = [
        Msg(0, b"u1", _interaction("view")),
        Msg(1, b"u1", _interaction("booking", booking_id="b1", quantity=2)),
        Msg(2, b"u1", _interaction("dismiss")),
        Msg(3, b"u1", _interaction("view", recommendation=None)),
        Msg(4, b"u1", b'{"recommendation_id": broken'),
        Msg(5, b"u1", _interaction("save")),
        Msg(6, b"u1", _interaction("save")),
    ]
    # 5 is dead-lettered, 6 routed to its owner (which forwards its outcome).
    outcomes = outcomes_of("impressions", messages, skip_offsets={5, 6})
    kinds = [json.loads(o.value or b"")["type"] for o in outcomes]
    assert kinds == ["view", "booking"]
    assert all(o.key == b"u1" for o in outcomes)
