"""Turning Kafka message bytes into validated models, or a readable reason why not."""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any, NamedTuple, TypeVar

import orjson
from pydantic import BaseModel, ValidationError

from eventrec.errors import InvalidMessageError
from eventrec.schemas.wire import (
    BOOKING_TYPES,
    LATEST_OCCURRED_AT,
    Event,
    Interaction,
    InteractionType,
    UserProfile,
)

Model = TypeVar("Model", bound=BaseModel)

MAX_REASON = 2000


def format_validation_error(exc: ValidationError) -> str:
    """``field: message`` for each problem, joined by ``; ``."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False):
        location = ".".join(str(part) for part in error["loc"])
        message = error["msg"]
        if message.startswith("Value error, "):
            # Model-level checks name their field in the message itself.
            message = message[len("Value error, ") :]
            parts.append(f"{location}: {message}" if location else message)
        else:
            parts.append(f"{location or 'value'}: {message}")
    return "; ".join(parts)[:MAX_REASON]


def _validate(model: type[Model], value: bytes, context: dict[str, Any] | None = None) -> Model:
    try:
        return model.model_validate_json(value, context=context)
    except ValidationError as exc:
        raise InvalidMessageError(format_validation_error(exc)) from None


def _check_key(key: bytes | None, field: str, entity_id: str) -> None:
    if key is None:
        return
    if key != entity_id.encode("utf-8"):
        shown = key[:140].decode("utf-8", errors="replace")
        raise InvalidMessageError(f"key: {shown!r} does not match {field} {entity_id!r}")


def decode_interaction(
    key: bytes | None, value: bytes | None, *, latest: float | None = None
) -> Interaction:
    """Validate one message of the ``interactions`` topic.

    ``latest`` (epoch seconds) rejects an ``occurred_at`` after it: the caller's clock
    plus the allowed skew.
    """
    if value is None:
        raise InvalidMessageError(
            "value: null is not an interaction (tombstones are for catalog topics)"
        )
    context = None if latest is None else {LATEST_OCCURRED_AT: latest}
    interaction = _validate(Interaction, value, context)
    _check_key(key, "user_id", interaction.user_id)
    return interaction


class InteractionFields(NamedTuple):
    """A valid interaction as plain values: what the consumer needs of it, nothing built."""

    interaction_id: str
    user_id: str
    type: InteractionType
    event_id: str | None
    rating: int | None
    query: str | None
    booking_id: str | None
    quantity: int | None
    recommendation_id: str | None
    occurred_at: float  # seconds since the Unix epoch, as ``datetime.timestamp()`` gives


def fields_of(interaction: Interaction) -> InteractionFields:
    return InteractionFields(
        interaction.interaction_id,
        interaction.user_id,
        interaction.type,
        interaction.event_id,
        interaction.rating,
        interaction.query,
        interaction.booking_id,
        interaction.quantity,
        interaction.recommendation_id,
        interaction.occurred_at.timestamp(),
    )


# NamedTuple's own constructor is Python code; the hot path builds the tuple directly.
_new_fields = tuple.__new__
_TYPES = {kind.value: kind for kind in InteractionType}
_SEARCH, _RATING = InteractionType.SEARCH, InteractionType.RATING
_INTERACTION_FIELDS = frozenset(Interaction.model_fields)
# The one timestamp form the fast path reads itself; pydantic reads every other form.
# (Python's fromisoformat also takes offset minutes of 60 and more; pydantic does not.)
_TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T(?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:\.[0-9]{1,6})?"
    r"(?:Z|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
)


def fast_interaction(value: bytes, latest: float = math.inf) -> InteractionFields | None:
    """The common, plainly valid interaction without pydantic; ``None`` when not sure.

    Accepts only what :class:`Interaction` accepts and yields the same values (a property
    test holds it to that); anything else, valid or not, is left to pydantic, which also
    words the reasons of the dead letters.
    """
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError:
        return None
    if type(body) is not dict or not _INTERACTION_FIELDS.issuperset(body):
        return None
    get = body.get
    version = get("schema_version")
    interaction_id = get("interaction_id")
    user_id = get("user_id")
    kind = get("type")
    occurred_at = get("occurred_at")
    if (
        type(version) is not int
        or version != 1
        or type(interaction_id) is not str
        or not 0 < len(interaction_id) <= 128
        or type(user_id) is not str
        or not 0 < len(user_id) <= 128
        or type(kind) is not str
        or type(occurred_at) is not str
        or _TIMESTAMP.fullmatch(occurred_at) is None
    ):
        return None
    kind = _TYPES.get(kind)
    if kind is None:
        return None
    event_id = get("event_id")
    if event_id is None:
        if kind is not _SEARCH:
            return None
    elif type(event_id) is not str or not 0 < len(event_id) <= 128:
        return None
    rating = get("rating")
    if kind is _RATING:
        if type(rating) is not int or not 1 <= rating <= 5:
            return None
    elif rating is not None:
        return None
    query = get("query")
    if kind is _SEARCH:
        if type(query) is not str or not 0 < len(query) <= 512:
            return None
    elif query is not None:
        return None
    booking_id = get("booking_id")
    quantity = get("quantity")
    if booking_id is not None or quantity is not None:
        if kind not in BOOKING_TYPES:
            return None
        if booking_id is not None and (
            type(booking_id) is not str or not 0 < len(booking_id) <= 128
        ):
            return None
        if quantity is not None and (type(quantity) is not int or not 1 <= quantity <= 1000):
            return None
    recommendation_id = get("recommendation_id")
    if recommendation_id is not None and (
        type(recommendation_id) is not str or not 0 < len(recommendation_id) <= 128
    ):
        return None
    try:
        seconds = datetime.fromisoformat(occurred_at).timestamp()
    except ValueError:
        return None
    if seconds > latest:
        return None  # pydantic words the reason
    return _new_fields(
        InteractionFields,
        (
            interaction_id,
            user_id,
            kind,
            event_id,
            rating,
            query,
            booking_id,
            quantity,
            recommendation_id,
            seconds,
        ),
    )


def decode_interaction_fields(
    key: bytes | None, value: bytes | None, *, latest: float | None = None
) -> InteractionFields:
    """:func:`decode_interaction` as plain values: the consumer's hot path."""
    fields = (
        None if value is None else fast_interaction(value, math.inf if latest is None else latest)
    )
    if fields is None or (key is not None and key != fields.user_id.encode("utf-8")):
        return fields_of(decode_interaction(key, value, latest=latest))  # or the reason why not
    return fields


def decode_event(key: bytes | None, value: bytes | None) -> Event | None:
    """Validate one message of the ``events`` topic; ``None`` is a deletion (tombstone)."""
    if not key:
        raise InvalidMessageError(
            "key: catalog messages need the event_id as their key (the topic is compacted "
            "by key; a keyless event could never be replaced or deleted)"
        )
    if value is None:
        return None
    event = _validate(Event, value)
    _check_key(key, "event_id", event.event_id)
    return event


def decode_profile(key: bytes | None, value: bytes | None) -> UserProfile | None:
    """Validate one message of the ``users`` topic; ``None`` is a deletion (tombstone)."""
    if not key:
        raise InvalidMessageError(
            "key: profile messages need the user_id as their key (the topic is compacted "
            "by key; a keyless profile could never be replaced or deleted)"
        )
    if value is None:
        return None
    profile = _validate(UserProfile, value)
    _check_key(key, "user_id", profile.user_id)
    return profile


def encode(model: BaseModel) -> bytes:
    """The JSON bytes producers publish for a model."""
    return model.model_dump_json(exclude_none=True).encode("utf-8")


def to_jsonable(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)
