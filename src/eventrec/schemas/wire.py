"""Wire formats of the Kafka topics: interactions, the event catalog and user profiles.

Every model is strict: unknown fields, naive timestamps and out-of-range values are
rejected, and each error names the field it is about.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationInfo,
    field_validator,
    model_validator,
)

SCHEMA_VERSION = 1

EntityId = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Label = Annotated[str, StringConstraints(min_length=1, max_length=64, strip_whitespace=True)]
Number = StrictInt | StrictFloat
Name = Annotated[str, StringConstraints(min_length=1, max_length=200, strip_whitespace=True)]


class InteractionType(StrEnum):
    VIEW = "view"
    SAVE = "save"
    BOOKING = "booking"
    BOOKING_CANCELLED = "booking_cancelled"
    RATING = "rating"
    DISMISS = "dismiss"
    SEARCH = "search"


BOOKING_TYPES = frozenset({InteractionType.BOOKING, InteractionType.BOOKING_CANCELLED})


# Validation context key: the latest acceptable ``occurred_at`` (epoch seconds), i.e. the
# validating process's clock plus EVENTREC_MAX_CLOCK_SKEW_SECONDS; absent = no limit.
LATEST_OCCURRED_AT = "latest_occurred_at"


def future_reason(occurred_at: float, latest: float) -> str:
    """The dead-letter reason of an interaction dated too far ahead of the consumer's clock."""
    return (
        f"occurred_at: {occurred_at - latest:.0f} s later than the consumer's clock plus the "
        f"allowed skew (EVENTREC_MAX_CLOCK_SKEW_SECONDS): a future timestamp would distort "
        f"every time decay"
    )


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=False)


class Interaction(_Strict):
    """One thing a user did: topic ``interactions``, key ``user_id``."""

    schema_version: Literal[1]
    interaction_id: EntityId = Field(description="Producer-chosen id, used for de-duplication.")
    user_id: EntityId
    type: InteractionType
    event_id: EntityId | None = None
    rating: StrictInt | None = Field(None, ge=1, le=5)
    query: Annotated[str, StringConstraints(min_length=1, max_length=512)] | None = None
    booking_id: EntityId | None = None
    quantity: StrictInt | None = Field(None, ge=1, le=1000)
    recommendation_id: EntityId | None = Field(
        None, description="request_id of the served recommendations this came from."
    )
    occurred_at: AwareDatetime

    @model_validator(mode="after")
    def _fields_of_the_type(self, info: ValidationInfo) -> Interaction:
        # One Python call per message checks every type-dependent field (the hot path).
        latest = info.context.get(LATEST_OCCURRED_AT) if info.context else None
        if latest is not None and self.occurred_at.timestamp() > latest:
            raise ValueError(future_reason(self.occurred_at.timestamp(), latest))
        kind = self.type
        if self.event_id is None and kind != InteractionType.SEARCH:
            raise ValueError(f"event_id: required for type '{kind}'")
        if kind == InteractionType.RATING:
            if self.rating is None:
                raise ValueError("rating: required for type 'rating'")
        elif self.rating is not None:
            raise ValueError(f"rating: only allowed for type 'rating', not '{kind}'")
        if kind == InteractionType.SEARCH:
            if self.query is None:
                raise ValueError("query: required for type 'search'")
        elif self.query is not None:
            raise ValueError(f"query: only allowed for type 'search', not '{kind}'")
        if kind not in BOOKING_TYPES:
            for name in ("booking_id", "quantity"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name}: only allowed for booking types, not '{kind}'")
        return self


class EventStatus(StrEnum):
    SCHEDULED = "scheduled"
    CANCELLED = "cancelled"
    SOLD_OUT = "sold_out"


class Price(_Strict):
    amount: Number = Field(ge=0)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "LKR"


class Event(_Strict):
    """One event of the catalog: compacted topic ``events``, key ``event_id``."""

    schema_version: Literal[1]
    event_id: EntityId
    title: Annotated[str, StringConstraints(min_length=1, max_length=300)]
    description: Annotated[str, StringConstraints(max_length=10_000)] = ""
    category: Label
    tags: list[Label] = Field(default_factory=list, max_length=50)
    venue: Annotated[str, StringConstraints(max_length=300)] = ""
    city: Label
    price: Price
    starts_at: AwareDatetime
    ends_at: AwareDatetime | None = None
    status: EventStatus = EventStatus.SCHEDULED
    avg_rating: Number | None = Field(None, ge=0, le=5)
    total_bookings: StrictInt = Field(0, ge=0)
    published_at: AwareDatetime | None = Field(
        None, description="When the event went on sale; defaults to when eventrec saw it."
    )
    organizer: Name | None = Field(None, description="Who puts the event on.")
    performers: list[Name] = Field(
        default_factory=list,
        max_length=50,
        description="Artists, speakers or teams, in billing order.",
    )
    series: Name | None = Field(None, description="The recurring series it is an edition of.")

    @field_validator("ends_at")
    @classmethod
    def _ends_after_start(cls, value: Any, info: ValidationInfo) -> Any:
        starts = info.data.get("starts_at")
        if value is not None and starts is not None and value < starts:
            raise ValueError("must not be before starts_at")
        return value


AgeBand = Literal["13-17", "18-24", "25-34", "35-44", "45-54", "55-64", "65+"]


class Budget(_Strict):
    min: Number = Field(0, ge=0)
    max: Number = Field(ge=0)
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "LKR"

    @field_validator("max")
    @classmethod
    def _max_not_below_min(cls, value: Any, info: ValidationInfo) -> Any:
        low = info.data.get("min")
        if low is not None and value < low:
            raise ValueError("must not be below min")
        return value


class UserProfile(_Strict):
    """A user's profile: compacted topic ``users``, key ``user_id``."""

    schema_version: Literal[1]
    user_id: EntityId
    age_band: AgeBand | None = None
    city: Label | None = None
    budget: Budget | None = None
    preferred_categories: list[Label] = Field(default_factory=list, max_length=50)
    interests: list[Label] = Field(default_factory=list, max_length=100)
