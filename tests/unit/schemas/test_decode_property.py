"""Whatever bytes arrive, the decoders answer with a validation error or a model, never a crash."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from eventrec.errors import InvalidMessageError
from eventrec.schemas import decode_event, decode_interaction, decode_profile

DECODERS = (decode_interaction, decode_event, decode_profile)

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=6)
    ),
    max_leaves=20,
)

interaction_like = st.fixed_dictionaries(
    {},
    optional={
        "schema_version": st.sampled_from([1, 2, "1", None]),
        "interaction_id": st.text(max_size=140),
        "user_id": st.text(max_size=140),
        "event_id": st.none() | st.text(max_size=140),
        "type": st.sampled_from(["view", "save", "booking", "rating", "search", "x", 3]),
        "rating": st.none() | st.integers(-2, 8) | st.floats(allow_nan=False),
        "query": st.none() | st.text(max_size=20),
        "quantity": st.none() | st.integers(-5, 2000),
        "occurred_at": st.sampled_from(
            ["2026-11-26T10:00:00Z", "2026-11-26T10:00:00", "", "nope", 1700000000]
        ),
        "extra": json_values,
    },
)


def decode_all(key: bytes | None, value: bytes | None) -> None:
    reasons = []
    for decoder in DECODERS:
        try:
            decoder(key, value)
        except InvalidMessageError as exc:
            reasons.append(exc.reason)
    assert all(reasons)


@settings(max_examples=300, deadline=None)
@given(key=st.none() | st.binary(max_size=40), value=st.none() | st.binary(max_size=300))
def test_arbitrary_bytes_only_raise_validation_errors(
    key: bytes | None, value: bytes | None
) -> None:
    decode_all(key, value)


@settings(max_examples=300, deadline=None)
@given(key=st.none() | st.binary(max_size=10), value=json_values)
def test_arbitrary_json_only_raises_validation_errors(key: bytes | None, value: Any) -> None:
    decode_all(key, json.dumps(value).encode())


@settings(max_examples=300, deadline=None)
@given(message=interaction_like)
def test_interaction_shaped_json_only_raises_validation_errors(message: dict[str, Any]) -> None:
    decode_all(None, json.dumps(message).encode())
