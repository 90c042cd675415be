"""Wire formats of attribution and experiments.

Topic ``impressions`` (key ``user_id``) carries two kinds of message, so that one user's
impressions and outcomes arrive in order on one partition and meet in one atomic step:

- ``impression``: serving showed ``event_ids`` (best first: the position is the index
  plus one) in the response ``request_id``;
- ``outcome``: the consumer saw an interaction carrying ``recommendation_id``; it is
  forwarded here so attribution never needs a key outside the impressions partition.

Experiments are stored as JSON documents of :class:`Experiment`.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from eventrec.schemas.wire import EntityId

ExperimentName = Annotated[
    str, StringConstraints(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.\-]+$")
]
VariantName = Annotated[
    str, StringConstraints(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_.\-]+$")
]
Strategy = Literal["default", "trending"]
HybridSetting = Literal["on", "off"]
OutcomeType = Literal["view", "save", "booking"]
MAX_VARIANTS = 16


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Impression(_Strict):
    """One response of ``GET /recommendations``."""

    schema_version: Literal[1]
    kind: Literal["impression"]
    request_id: EntityId
    user_id: EntityId
    experiment: ExperimentName | None = None
    experiment_code: int = Field(0, ge=0, le=2**16 - 1)
    variant: VariantName | None = None
    variant_index: int = Field(0, ge=0, le=255)
    model_version: str | None = None
    strategy: str
    event_ids: list[EntityId] = Field(max_length=255)
    shown_at: AwareDatetime


class Outcome(_Strict):
    """An interaction that names the response it came from."""

    schema_version: Literal[1]
    kind: Literal["outcome"]
    user_id: EntityId
    interaction_id: EntityId
    recommendation_id: EntityId
    event_id: EntityId
    type: OutcomeType
    occurred_at: AwareDatetime


class Variant(_Strict):
    """What a variant's users are served: a fixed model version and/or a strategy."""

    name: VariantName
    model_version: str | None = Field(
        None, description="A stored version (`current` is resolved at creation); None: current."
    )
    strategy: Strategy = Field(
        "default", description="default: serving's own choice; trending: trending only."
    )
    hybrid: HybridSetting = Field(
        "on",
        description="on: the version's learned blend; off: its collaborative scores alone.",
    )


class ExperimentSpec(_Strict):
    """What an operator asks for (``POST /experiments``, ``eventrec experiment create``)."""

    name: ExperimentName
    variants: list[Variant] = Field(min_length=2, max_length=MAX_VARIANTS)
    split: list[float] | None = Field(
        None, description="Share of users per variant (any positive weights); default equal."
    )
    traffic: float = Field(1.0, gt=0, le=1, description="Share of all users in the experiment.")
    primary_metric: OutcomeType = "booking"

    @model_validator(mode="after")
    def _check(self) -> ExperimentSpec:
        names = [v.name for v in self.variants]
        if len(set(names)) != len(names):
            raise ValueError(f"variant names must differ: {names}")
        if self.split is not None:
            if len(self.split) != len(self.variants):
                raise ValueError(
                    f"split has {len(self.split)} shares for {len(self.variants)} variants"
                )
            if any(s <= 0 for s in self.split):
                raise ValueError("every share of the split must be positive")
        return self

    @property
    def weights(self) -> list[float]:
        return list(self.split) if self.split is not None else [1.0] * len(self.variants)


class Experiment(ExperimentSpec):
    """A stored experiment: the spec with versions resolved, its code and its state."""

    code: int = Field(ge=1, le=2**16 - 1)
    status: Literal["running", "stopped"]
    created_at: AwareDatetime
    stopped_at: AwareDatetime | None = None


_VARIANT_ARG = re.compile(r"^(?P<name>[^:]+):(?P<settings>.*)$")


def parse_variant(text: str) -> Variant:
    """``NAME:key=value[,key=value]`` with keys ``model``, ``strategy`` and ``hybrid``
    (CLI form)."""
    match = _VARIANT_ARG.match(text)
    if not match:
        raise ValueError(f"variant {text!r}: expected NAME:key=value[,key=value]")
    fields: dict[str, str] = {"name": match["name"]}
    for part in filter(None, match["settings"].split(",")):
        key, sep, value = part.partition("=")
        if not sep or not value:
            raise ValueError(f"variant {text!r}: {part!r} is not key=value")
        if key == "model":
            fields["model_version"] = value
        elif key in ("strategy", "hybrid"):
            fields[key] = value
        else:
            raise ValueError(f"variant {text!r}: unknown setting {key!r} (model, strategy, hybrid)")
    return Variant.model_validate(fields)


def parse_split(text: str) -> list[float]:
    """``50/50`` or ``90/5/5``."""
    try:
        shares = [float(part) for part in text.split("/")]
    except ValueError:
        raise ValueError(f"split {text!r}: expected shares like 50/50") from None
    return shares
