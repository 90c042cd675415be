"""Experiment specs and the impressions topic's messages."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from eventrec.schemas.impressions import (
    ExperimentSpec,
    Impression,
    Outcome,
    Variant,
    parse_split,
    parse_variant,
)


def test_parse_variant() -> None:
    assert parse_variant("b:model=v000012") == Variant(name="b", model_version="v000012")
    assert parse_variant("c:strategy=trending").strategy == "trending"
    assert parse_variant("control:") == Variant(name="control")
    with pytest.raises(ValueError, match="unknown setting 'colour'"):
        parse_variant("b:colour=red")
    with pytest.raises(ValueError, match="expected NAME:key=value"):
        parse_variant("b")
    with pytest.raises(ValidationError):
        parse_variant("c:strategy=random")
    # Hybrid settings: the version's collaborative scores without the learned blend.
    assert parse_variant("b:hybrid=off") == Variant(name="b", hybrid="off")
    assert parse_variant("a:model=v000003,hybrid=on").hybrid == "on"
    with pytest.raises(ValidationError):
        parse_variant("b:hybrid=maybe")


def test_spec_checks_split_and_names() -> None:
    variants = [Variant(name="a"), Variant(name="b")]
    assert ExperimentSpec(name="x", variants=variants).weights == [1.0, 1.0]
    assert parse_split("90/10") == [90.0, 10.0]
    with pytest.raises(ValidationError, match="split has 3 shares for 2 variants"):
        ExperimentSpec(name="x", variants=variants, split=[1, 1, 1])
    with pytest.raises(ValidationError, match="variant names must differ"):
        ExperimentSpec(name="x", variants=[Variant(name="a"), Variant(name="a")])
    with pytest.raises(ValidationError):
        ExperimentSpec(name="bad name", variants=variants)
    with pytest.raises(ValueError, match="expected shares"):
        parse_split("fifty/fifty")


def test_messages_are_strict() -> None:
    impression = Impression.model_validate_json(
        b'{"schema_version": 1, "kind": "impression", "request_id": "r1", "user_id": "u1",'
        b' "strategy": "trending", "event_ids": ["e1", "e2"],'
        b' "shown_at": "2026-11-30T10:00:00+00:00"}'
    )
    assert impression.experiment_code == 0
    with pytest.raises(ValidationError):
        Outcome.model_validate_json(
            b'{"schema_version": 1, "kind": "outcome", "user_id": "u", "interaction_id": "i",'
            b' "recommendation_id": "r", "event_id": "e", "type": "dismiss",'
            b' "occurred_at": "2026-11-30T10:00:00+00:00"}'
        )
