"""Turning Kafka message bytes into validated models, or a readable reason why not."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from eventrec.errors import InvalidMessageError
from eventrec.schemas.wire import Event, Interaction, UserProfile

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


def _validate(model: type[Model], value: bytes) -> Model:
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        raise InvalidMessageError(format_validation_error(exc)) from None


def _check_key(key: bytes | None, field: str, entity_id: str) -> None:
    if key is None:
        return
    if key != entity_id.encode("utf-8"):
        shown = key[:140].decode("utf-8", errors="replace")
        raise InvalidMessageError(f"key: {shown!r} does not match {field} {entity_id!r}")


def decode_interaction(key: bytes | None, value: bytes | None) -> Interaction:
    """Validate one message of the ``interactions`` topic."""
    if value is None:
        raise InvalidMessageError(
            "value: null is not an interaction (tombstones are for catalog topics)"
        )
    interaction = _validate(Interaction, value)
    _check_key(key, "user_id", interaction.user_id)
    return interaction


def decode_event(key: bytes | None, value: bytes | None) -> Event | None:
    """Validate one message of the ``events`` topic; ``None`` is a deletion (tombstone)."""
    if value is None:
        if not key:
            raise InvalidMessageError("key: a tombstone needs the event_id as its key")
        return None
    event = _validate(Event, value)
    _check_key(key, "event_id", event.event_id)
    return event


def decode_profile(key: bytes | None, value: bytes | None) -> UserProfile | None:
    """Validate one message of the ``users`` topic; ``None`` is a deletion (tombstone)."""
    if value is None:
        if not key:
            raise InvalidMessageError("key: a tombstone needs the user_id as its key")
        return None
    profile = _validate(UserProfile, value)
    _check_key(key, "user_id", profile.user_id)
    return profile


def encode(model: BaseModel) -> bytes:
    """The JSON bytes producers publish for a model."""
    return model.model_dump_json(exclude_none=True).encode("utf-8")


def to_jsonable(model: BaseModel) -> dict[str, Any]:
    return model.model_dump(mode="json", exclude_none=True)
