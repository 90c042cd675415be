"""The dashboard's experiments: running ones only, each variant against the control."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import fakeredis
import pytest

from eventrec.model.abtest import ratio_estimate, relative_difference
from eventrec.schemas.impressions import Experiment
from eventrec.serving.dashboard import CostBoundedView, experiments_view
from eventrec.store.keys import Keys
from eventrec.store.store import Store

PREFIX = "t"
TOPIC = "impressions"
# Twenty users per variant, ten impressions each; b's users view more shown events.
VIEWS = {0: [1, 2] * 10, 1: [2, 3] * 10}
IMPRESSIONS = [10] * 20


def experiment(name: str, code: int, status: str) -> Experiment:
    return Experiment.model_validate(
        {
            "name": name,
            "variants": [
                {"name": "control", "model_version": "v000001", "strategy": "trending"},
                {"name": "b", "model_version": "v000002"},
            ],
            "primary_metric": "view",
            "code": code,
            "status": status,
            "created_at": datetime(2026, 11, 30, 12, tzinfo=UTC),
        }
    )


@pytest.fixture
def store() -> Store:
    client = fakeredis.FakeRedis()
    keys = Keys(PREFIX)
    for stored in (experiment("ranker", 1, "running"), experiment("old", 2, "stopped")):
        client.hset(keys.experiments, stored.name, stored.model_dump_json())
    client.sadd(keys.attribution_partitions(TOPIC), 0)
    for variant, views in VIEWS.items():
        for counter, values in (("impressions", IMPRESSIONS), ("view", views)):
            users = {f"u{variant}-{i}": value for i, value in enumerate(values)}
            client.hset(keys.attribution_users(TOPIC, 0, 1, variant, counter), mapping=users)
    return Store(client, PREFIX)


def test_running_experiments_show_each_variant_and_the_interval_to_the_control(
    store: Store,
) -> None:
    view = experiments_view(store, TOPIC)
    assert view["stopped"] == 1
    assert view["confidence"] == 0.95
    (shown,) = view["experiments"]
    assert shown["name"] == "ranker"
    assert shown["control"] == "control"
    assert shown["primary_metric"] == "click_through"
    control, b = shown["variants"]
    assert (control["variant"], control["strategy"], control["model_version"]) == (
        "control",
        "trending",
        "v000001",
    )
    assert (b["users"], b["impressions"]) == (20, 200)
    assert control["metrics"]["click_through"]["rate"] == pytest.approx(30 / 200)
    assert "relative_to_control" not in control["metrics"]["click_through"]
    expected = relative_difference(
        ratio_estimate(VIEWS[0], IMPRESSIONS), ratio_estimate(VIEWS[1], IMPRESSIONS)
    )
    assert expected is not None
    difference = b["metrics"]["click_through"]["relative_to_control"]
    assert difference["relative"] == pytest.approx(10 / 6 - 1, abs=1e-6)
    assert (difference["low"], difference["high"]) == (
        pytest.approx(expected.low, abs=1e-6),
        pytest.approx(expected.high, abs=1e-6),
    )
    assert difference["low"] > 0  # b's users viewed more, with little spread
    assert not shown["sample_ratio"]["mismatch"]
    assert shown["verdict"].startswith("b views 67 % more than control")
    assert "days" not in shown


def test_no_experiment_running_is_an_empty_list(store: Store) -> None:
    client = store.client
    stopped = experiment("ranker", 1, "stopped")
    client.hset(Keys(PREFIX).experiments, "ranker", stopped.model_dump_json())
    assert experiments_view(store, TOPIC) == {"confidence": 0.95, "experiments": [], "stopped": 2}


def test_an_expensive_view_is_reused_for_ten_times_what_it_cost() -> None:
    now = [100.0]
    computed: list[float] = []

    def compute() -> dict[str, Any]:
        now[0] += 2.0  # two seconds of reading Redis
        computed.append(now[0])
        return {"computed": len(computed)}

    view = CostBoundedView(compute, factor=10, clock=lambda: now[0])
    assert view.get() == {"computed": 1}
    now[0] += 19.0
    assert view.get() == {"computed": 1}
    now[0] += 1.0  # twenty seconds after it was computed
    assert view.get() == {"computed": 2}


def test_a_cheap_view_is_always_fresh() -> None:
    calls = iter(range(1, 100))
    view = CostBoundedView(lambda: {"computed": next(calls)}, clock=lambda: 5.0)
    assert [view.get()["computed"] for _ in range(3)] == [1, 2, 3]
