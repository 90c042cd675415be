"""The planted truth as arrays: saved without pickle, and the oracle that scores by it."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

import numpy as np
import pytest

from eventrec.synth.catalog import DAY
from eventrec.synth.config import SynthConfig
from eventrec.synth.funnel import propensity
from eventrec.synth.platform import SyntheticPlatform, generate
from eventrec.synth.truth import PlantedTastes, oracle_scores


@pytest.fixture(scope="module")
def platform() -> SyntheticPlatform:
    return generate(SynthConfig(n_users=300, n_events=120, n_interactions=12_000, seed=11))


def test_truth_round_trips_through_an_npz_without_pickle(
    platform: SyntheticPlatform, tmp_path: Path
) -> None:
    tastes = platform.truth.tastes()
    path = platform.write_truth(tmp_path)
    assert path.name == "truth.npz"
    with np.load(path, allow_pickle=False) as arrays:
        assert all(arrays[name].dtype != object for name in arrays.files)
    loaded = PlantedTastes.load(path)
    for item in fields(PlantedTastes):
        assert np.array_equal(np.asarray(getattr(loaded, item.name)), getattr(tastes, item.name))
    assert loaded.latent_share == platform.config.latent_share


def test_oracle_is_the_generators_propensity_times_the_share_booked_in_the_horizon(
    platform: SyntheticPlatform,
) -> None:
    tastes = platform.truth.tastes()
    events = platform.event_table
    at = platform.config.now_epoch - 40 * DAY
    users = list(tastes.user_ids[:50])
    scores = oracle_scores(tastes, users, events.event_ids, at)
    planted = propensity(platform.user_table, events, np.arange(50))
    on_sale = (events.published_at <= at) & (events.starts_at > at)
    assert on_sale.sum() > 10
    assert np.all(scores[:, ~on_sale] == 0)
    assert np.all(scores[:, on_sale] > 0)
    # Per event, the oracle is the planted propensity times one factor: the time window.
    ratio = scores[:, on_sale] / planted[:, on_sale]
    assert np.allclose(ratio, ratio[:1], rtol=1e-9)
    # An event starting within the horizon gets more of its bookings in it than one far off.
    # (One starting within the hour has had nearly all its bookings already.)
    soon = on_sale & (events.starts_at > at + 5 * DAY) & (events.starts_at < at + 15 * DAY)
    late = on_sale & (events.starts_at > at + 45 * DAY)
    assert soon.any()
    assert late.any()
    assert ratio[0, soon[on_sale]].min() > ratio[0, late[on_sale]].max()


def test_oracle_gives_zero_to_ids_it_does_not_know(platform: SyntheticPlatform) -> None:
    tastes = platform.truth.tastes()
    at = platform.config.now_epoch - 10 * DAY
    event_ids = [*platform.event_table.event_ids[:20], "ev-unknown"]
    scores = oracle_scores(tastes, ["u-unknown", str(tastes.user_ids[0])], event_ids, at)
    assert scores.shape == (2, 21)
    assert np.all(scores[0] == 0)
    assert np.all(scores[:, -1] == 0)
    assert oracle_scores(tastes, ["nobody"], ["nothing"], at).tolist() == [[0.0]]


def test_oracle_ranks_each_users_next_bookings_far_above_chance(
    platform: SyntheticPlatform,
) -> None:
    table, events = platform.interactions, platform.event_table
    at = platform.config.now_epoch - 30 * DAY
    after = (table.time >= at) & (table.time < at + 30 * DAY) & (table.kind == 2)
    on_sale = np.flatnonzero((events.published_at <= at) & (events.starts_at > at))
    tastes = platform.truth.tastes()
    percentiles = []
    for user, event in zip(table.user[after].tolist(), table.event[after].tolist(), strict=True):
        if event not in set(on_sale.tolist()):
            continue
        scores = oracle_scores(
            tastes, [str(tastes.user_ids[user])], [events.event_ids[e] for e in on_sale], at
        )[0]
        position = int(np.flatnonzero(on_sale == event)[0])
        percentiles.append(float((scores[position] > scores).mean()))
    assert len(percentiles) > 20
    assert np.mean(percentiles) > 0.8
