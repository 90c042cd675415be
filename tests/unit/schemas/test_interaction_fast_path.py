"""The consumer's fast path for interactions agrees with pydantic on every message it takes.

For any bytes, ``fast_interaction`` either defers (``None``) or yields exactly the values
the pydantic ``Interaction`` model yields for the same bytes; what pydantic rejects, it
must defer. Messages are generated valid and near-valid: every field at and around its
limits, other types, other timestamp spellings, extra, missing and repeated keys.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from eventrec.errors import InvalidMessageError
from eventrec.schemas import Interaction, InteractionType, decode_interaction
from eventrec.schemas.decode import decode_interaction_fields, fast_interaction, fields_of
from eventrec.schemas.wire import LATEST_OCCURRED_AT

TYPES = [kind.value for kind in InteractionType]

other_json = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
    st.just([]),
    st.just({}),
    st.just(["view"]),
)


def ids(limit: int) -> st.SearchStrategy[Any]:
    """Strings of 0, 1, ``limit`` and ``limit + 1`` characters (some of several bytes), or any."""
    at_limits = st.builds(
        lambda char, length: char * length,
        st.sampled_from(["x", " ", "é", "😀", "\0"]),
        st.sampled_from([0, 1, limit, limit + 1]),
    )
    return at_limits | st.text(max_size=12)


def around(low: int, high: int) -> st.SearchStrategy[Any]:
    """Integers at and just beyond ``low..high``, the same as other JSON types, or any."""
    edges = [low - 1, low, high, high + 1, float(low), True, str(low), 2**64]
    return st.sampled_from(edges) | st.integers(low - 2, high + 2)


def or_other(values: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``values`` three times in four, else a JSON value of another kind."""
    return st.integers(0, 3).flatmap(lambda n: other_json if n == 0 else values)


def digits(n: int) -> st.SearchStrategy[str]:
    return st.text(alphabet="0123456789", min_size=n, max_size=n)


@st.composite
def timestamps(draw: st.DrawFn) -> Any:
    """RFC 3339 and its neighbours: other separators, precisions, offsets, out-of-range parts."""
    if draw(st.integers(0, 9)) == 0:
        return draw(
            other_json
            | st.sampled_from(
                ["", "nope", "2026-11-26", "2026-11-26T10:00:00", "1795687200", "2026-W48-4"]
            )
        )
    moment = draw(st.datetimes())
    rare = st.integers(0, 9).map(lambda n: n == 0)  # one draw in ten takes the odd branch
    if draw(rare):
        date = draw(digits(4)) + "-" + draw(digits(2)) + "-" + draw(digits(2))
    else:
        date = f"{moment.year:04d}-{moment.month:02d}-{moment.day:02d}"
    if draw(rare):
        clock = draw(digits(2)) + ":" + draw(digits(2)) + draw(st.sampled_from(["", ":"]))
        clock += draw(digits(2))
    else:
        clock = f"{moment.hour:02d}:{moment.minute:02d}:{moment.second:02d}"
    separator = draw(st.sampled_from(["t", " ", "_", "TT"])) if draw(rare) else "T"
    fraction = ""
    if draw(st.booleans()):
        fraction = "." + f"{moment.microsecond:06d}"[: draw(st.integers(1, 6))]
    if draw(rare):
        fraction = draw(st.sampled_from([".", ","])) + draw(digits(draw(st.integers(0, 10))))
    sign = draw(st.sampled_from("+-"))
    hours, minutes = draw(st.integers(0, 23)), draw(st.sampled_from([0, 30, 45, 59]))
    offset = draw(st.sampled_from(["Z", "+00:00", f"{sign}{hours:02d}:{minutes:02d}"]))
    if draw(st.integers(0, 4)) == 0:  # out of range, or spelled another way
        hours, minutes = draw(st.integers(0, 25)), draw(st.integers(0, 99))
        offset = draw(
            st.sampled_from(
                [f"{sign}{hours:02d}:{minutes:02d}"] * 3
                + ["z", "", "-00:00", f"{sign}{hours:02d}{minutes:02d}", f"{sign}{hours:02d}"]
            )
        )
    return date + separator + clock + fraction + offset


@st.composite
def interaction_messages(draw: st.DrawFn) -> bytes:
    """A valid interaction of a random type, then zero to three mutations, as JSON bytes."""
    kind = draw(st.sampled_from(TYPES))
    body: dict[str, Any] = {
        "schema_version": 1,
        "interaction_id": draw(st.text(min_size=1, max_size=128)),
        "user_id": draw(st.text(min_size=1, max_size=128)),
        "type": kind,
        "occurred_at": draw(timestamps()),
    }
    if kind != "search" or draw(st.booleans()):
        body["event_id"] = draw(st.text(min_size=1, max_size=128))
    if kind == "rating":
        body["rating"] = draw(st.integers(1, 5))
    if kind == "search":
        body["query"] = draw(st.text(min_size=1, max_size=512))
    if kind in ("booking", "booking_cancelled"):
        if draw(st.booleans()):
            body["booking_id"] = draw(st.text(min_size=1, max_size=128))
        if draw(st.booleans()):
            body["quantity"] = draw(st.integers(1, 1000))
    if draw(st.booleans()):
        body["recommendation_id"] = draw(st.text(min_size=1, max_size=128))
    if draw(st.integers(0, 4)) == 0:
        for name in draw(st.sets(st.sampled_from(["rating", "query", "booking_id", "quantity"]))):
            body[name] = None

    mutations = {
        "schema_version": or_other(around(1, 1)),
        "interaction_id": or_other(ids(128)),
        "user_id": or_other(ids(128)),
        "event_id": or_other(ids(128)),
        "type": or_other(st.sampled_from([*TYPES, "VIEW", " view", "views", ""])),
        "rating": or_other(around(1, 5)),
        "query": or_other(ids(512)),
        "booking_id": or_other(ids(128)),
        "quantity": or_other(around(1, 1000)),
        "recommendation_id": or_other(ids(128)),
        "occurred_at": timestamps(),
        "userId": other_json,
        "extra": other_json,
    }
    for _ in range(draw(st.sampled_from([0, 0, 1, 1, 1, 2, 3]))):
        name = draw(st.sampled_from(sorted(mutations)))
        if draw(st.integers(0, 5)) == 0:
            body.pop(name, None)
        else:
            body[name] = draw(mutations[name])

    names = draw(st.permutations(list(body)))
    text = json.dumps(
        {name: body[name] for name in names},
        ensure_ascii=draw(st.booleans()),
        separators=draw(st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")])),
    )
    if draw(st.integers(0, 9)) == 0:  # a repeated key: both parsers keep the last value
        name = draw(st.sampled_from(sorted(mutations)))
        repeat = json.dumps({name: draw(mutations[name])})[1:-1]
        text = (text[:-1] + ", " + repeat + "}") if body else "{" + repeat + "}"
    return text.encode()


def view(**changes: Any) -> bytes:
    body = {
        "schema_version": 1,
        "interaction_id": "i-1",
        "user_id": "u-1",
        "type": "view",
        "event_id": "e-1",
        "occurred_at": "2026-11-26T10:00:00Z",
    }
    return json.dumps({**body, **changes}).encode()


def pydantic_fields(value: bytes) -> Any:
    try:
        return fields_of(Interaction.model_validate_json(value))
    except ValidationError:
        return None


def assert_agrees(value: bytes) -> None:
    fast = fast_interaction(value)
    if fast is None:
        return
    slow = pydantic_fields(value)
    assert slow is not None, f"fast path accepted what pydantic rejects: {value!r}"
    assert fast == slow
    assert [type(part) for part in fast] == [type(part) for part in slow]


@settings(max_examples=3000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=interaction_messages())
@example(value=view(occurred_at="2026-11-26T10:00:00+05:60"))  # fromisoformat takes it
@example(value=view(occurred_at="2026-11-26T10:00:00+05"))  # fromisoformat takes it
@example(value=view(schema_version=True))  # pydantic takes it
def test_fast_path_yields_what_pydantic_yields_or_defers(value: bytes) -> None:
    assert_agrees(value)


@settings(max_examples=500, deadline=None)
@given(value=st.binary(max_size=200))
def test_fast_path_on_arbitrary_bytes_agrees_or_defers(value: bytes) -> None:
    assert_agrees(value)


@settings(max_examples=500, deadline=None)
@given(value=interaction_messages(), key=st.none() | st.sampled_from([b"", b"u", b"\xff"]))
def test_decoded_fields_equal_the_model_or_the_same_reason(value: bytes, key: bytes | None) -> None:
    try:
        expected: Any = fields_of(decode_interaction(key, value))
    except InvalidMessageError as exc:
        expected = exc.reason
    try:
        got: Any = decode_interaction_fields(key, value)
    except InvalidMessageError as exc:
        got = exc.reason
    assert got == expected


@pytest.mark.parametrize(
    "fields",
    [
        {"type": "view", "event_id": "e-1"},
        {"type": "save", "event_id": "e-1", "recommendation_id": "r-9"},
        {"type": "booking", "event_id": "e-1", "booking_id": "b-7", "quantity": 3},
        {"type": "booking_cancelled", "event_id": "e-1", "booking_id": "b-7"},
        {"type": "rating", "event_id": "e-1", "rating": 4},
        {"type": "dismiss", "event_id": "e-1"},
        {"type": "search", "query": "jazz in colombo"},
    ],
)
@pytest.mark.parametrize(
    "occurred_at",
    ["2026-11-26T10:00:00Z", "2026-11-26T15:30:00.250+05:30", "2026-11-26T10:00:00+00:00"],
)
def test_what_producers_send_takes_the_fast_path(fields: dict[str, Any], occurred_at: str) -> None:
    body = {
        "schema_version": 1,
        "interaction_id": "i-1",
        "user_id": "u-1",
        "occurred_at": occurred_at,
        **fields,
    }
    value = json.dumps(body).encode()
    fast = fast_interaction(value)
    assert fast is not None
    assert fast == pydantic_fields(value)


def assert_agrees_on_the_skew_limit(value: bytes, latest: float) -> None:
    fast = fast_interaction(value, latest)
    try:
        slow: Any = fields_of(
            Interaction.model_validate_json(value, context={LATEST_OCCURRED_AT: latest})
        )
    except ValidationError:
        slow = None
    if fast is None:
        if slow is not None:
            # Deferring is allowed, but never for a plainly valid message under the limit.
            assert fast_interaction(value) is None
        return
    assert slow is not None, f"fast path accepted what pydantic rejects: {value!r} {latest}"
    assert fast == slow


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    value=interaction_messages(),
    latest=st.floats(-7e10, 2.6e11) | st.sampled_from([1795687200.0, 1795687199.999]),
)
@example(value=view(occurred_at="2026-11-26T10:00:00Z"), latest=1795687200.0)  # at the limit
@example(value=view(occurred_at="2026-11-26T10:00:00.000001Z"), latest=1795687200.0)
@example(value=view(occurred_at="9999-12-31T23:59:59Z"), latest=1795687200.0)
def test_fast_path_and_pydantic_agree_on_the_clock_skew_limit(value: bytes, latest: float) -> None:
    assert_agrees_on_the_skew_limit(value, latest)


def test_a_future_timestamp_is_refused_by_both_paths_with_the_reason() -> None:
    value = view(occurred_at="9999-01-01T00:00:00Z")
    assert fast_interaction(value, 1795687200.0) is None
    with pytest.raises(InvalidMessageError, match="EVENTREC_MAX_CLOCK_SKEW_SECONDS"):
        decode_interaction_fields(b"u-1", value, latest=1795687200.0)
    assert decode_interaction_fields(b"u-1", value) is not None  # no limit given: accepted
