"""`eventrec experiment` and `eventrec synth --simulate-experiment`: arguments to specs."""

from __future__ import annotations

import pytest

from eventrec.cli import build_parser
from eventrec.errors import ExperimentError
from eventrec.experiments.command import _spec


def test_create_arguments_become_a_spec() -> None:
    args = build_parser().parse_args(
        ["experiment", "create", "ranker", "--variant", "control:model=current",
         "--variant", "b:model=v000012,strategy=trending", "--split", "90/10",
         "--traffic", "20", "--metric", "view"]
    )  # fmt: skip
    spec = _spec(args)
    assert [v.name for v in spec.variants] == ["control", "b"]
    assert spec.variants[1].model_version == "v000012"
    assert spec.variants[1].strategy == "trending"
    assert spec.weights == [90.0, 10.0]
    assert spec.traffic == pytest.approx(0.2)
    assert spec.primary_metric == "view"


def test_bad_create_arguments_say_why() -> None:
    parser = build_parser()
    one = parser.parse_args(["experiment", "create", "x", "--variant", "a:"])
    with pytest.raises(ExperimentError, match="at least 2"):
        _spec(one)
    split = parser.parse_args(
        ["experiment", "create", "x", "--variant", "a:", "--variant", "b:", "--split", "1/2/3"]
    )
    with pytest.raises(ExperimentError, match="split has 3 shares for 2 variants"):
        _spec(split)
    colour = parser.parse_args(
        ["experiment", "create", "x", "--variant", "a:", "--variant", "b:colour=red"]
    )
    with pytest.raises(ExperimentError, match="unknown setting 'colour'"):
        _spec(colour)


def test_synth_takes_the_simulation_options() -> None:
    args = build_parser().parse_args(
        ["synth", "--simulate-experiment", "demo-ab", "--simulate-users", "500",
         "--serving-url", "http://127.0.0.1:8001"]
    )  # fmt: skip
    assert args.simulate_experiment == "demo-ab"
    assert args.simulate_users == 500
    assert args.simulate_requests == 3
    assert args.serving_url == "http://127.0.0.1:8001"
