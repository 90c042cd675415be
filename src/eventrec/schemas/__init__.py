"""Wire formats: pydantic models of everything on Kafka and HTTP."""

from eventrec.schemas.deadletter import DeadLetter
from eventrec.schemas.decode import (
    decode_event,
    decode_interaction,
    decode_profile,
    encode,
    format_validation_error,
)
from eventrec.schemas.wire import (
    SCHEMA_VERSION,
    Budget,
    Event,
    EventStatus,
    Interaction,
    InteractionType,
    Price,
    UserProfile,
)

__all__ = [
    "SCHEMA_VERSION",
    "Budget",
    "DeadLetter",
    "Event",
    "EventStatus",
    "Interaction",
    "InteractionType",
    "Price",
    "UserProfile",
    "decode_event",
    "decode_interaction",
    "decode_profile",
    "encode",
    "format_validation_error",
]
