"""The trainer's store-free parts: trending, the publish gate, one fit's version contents."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from eventrec.model.content import event_content
from eventrec.model.errors import ModelFitError
from eventrec.model.hybrid import COLLABORATIVE_ONLY
from eventrec.model.hybrid_features import FEATURES
from eventrec.model.records import (
    TYPE_BOOKING,
    TYPE_BOOKING_CANCELLED,
    TYPE_DISMISS,
    TYPE_SAVE,
    TYPE_VIEW,
    InteractionLog,
)
from eventrec.store.versions import ARRAY_DTYPES, array_bytes, checksum
from eventrec.trainer.command import blend_table
from eventrec.trainer.fit import (
    MODEL_KIND,
    Comparison,
    FitOptions,
    fit_version,
    publish_gate,
    trending_scores,
)
from tests.unit.model.conftest import planted_log

DAY = 86_400
NOW = 1_800_000_000


def test_trending_weighs_bookings_over_saves_over_views_and_decays_by_half_a_week() -> None:
    log = InteractionLog.from_columns(
        user=[0, 1, 2, 3, 0, 1, 2],
        event=[0, 0, 1, 2, 3, 3, 4],
        kind=[
            TYPE_BOOKING,
            TYPE_BOOKING,
            TYPE_SAVE,
            TYPE_VIEW,
            TYPE_BOOKING,
            TYPE_BOOKING_CANCELLED,
            TYPE_DISMISS,
        ],
        value=[1] * 7,
        time=[NOW, NOW - 7 * DAY, NOW, NOW, NOW, NOW, NOW],
        n_users=4,
        n_events=6,
    )
    scores = trending_scores(log, half_life_days=7.0)
    # Event 0: one booking now and one a half-life ago; 3: booked then cancelled.
    np.testing.assert_allclose(scores, [1.5, 0.3, 0.05, 0.0, 0.0, 0.0], rtol=1e-6)
    assert scores.dtype == np.float32


def test_trending_of_an_empty_log_is_all_zero() -> None:
    empty = InteractionLog.from_columns([], [], [], [], [], n_users=0, n_events=3)
    assert trending_scores(empty).tolist() == [0.0, 0.0, 0.0]


def _comparison(model: np.ndarray, other: np.ndarray, against: str = "trending") -> Comparison:
    return Comparison.of(against, model, other, seed=0)


def test_the_gate_refuses_a_model_that_does_not_beat_trending() -> None:
    rng = np.random.default_rng(0)
    trending = rng.random(500)
    tied = _comparison(trending + rng.normal(0, 0.05, 500), trending)
    publish, gated, reason = publish_gate(500, tied, None)
    assert (publish, gated) == (False, True)
    assert "does not beat trending" in reason
    better = _comparison(trending + 0.05, trending)
    assert publish_gate(500, better, None)[:2] == (True, True)


def test_the_gate_refuses_a_version_worse_than_the_current_configuration() -> None:
    rng = np.random.default_rng(1)
    trending = rng.random(400) * 0.5
    current = trending + 0.3
    worse = current - 0.05 + rng.normal(0, 0.01, 400)
    publish, gated, reason = publish_gate(
        400, _comparison(worse, trending), _comparison(worse, current, "the current one")
    )
    assert (publish, gated) == (False, True)
    assert "worse than the current version's configuration" in reason


def test_the_gate_accepts_a_version_within_the_bootstrap_margin_of_the_current() -> None:
    rng = np.random.default_rng(2)
    trending = rng.random(400) * 0.5
    current = trending + 0.3
    # Slightly worse on average, but the interval of the difference still holds zero.
    close = current - 0.002 + rng.normal(0, 0.1, 400)
    versus_current = _comparison(close, current, "the current one")
    assert versus_current.difference < 0 < versus_current.high
    publish, gated, reason = publish_gate(400, _comparison(close, trending), versus_current)
    assert (publish, gated) == (True, True)
    assert "not worse than the current configuration" in reason


def test_too_few_validation_users_publish_ungated() -> None:
    comparison = _comparison(np.zeros(10), np.ones(10))
    assert publish_gate(49, comparison, comparison)[:2] == (True, False)


def _timed_planted_log(n_users: int = 300) -> InteractionLog:
    """The planted platform with its interactions spread over 60 days at random."""
    planted = planted_log(n_users=n_users)
    rng = np.random.default_rng(0)
    records = planted.records.copy()
    records["time"] = NOW - rng.integers(0, 60 * DAY, size=len(records))
    order = np.argsort(records["time"], kind="stable")
    return InteractionLog(planted.user[order], records[order], planted.n_users, planted.n_events)


def test_event_content_reads_the_stored_event_json() -> None:
    document = json.dumps(
        {
            "category": "Music",
            "tags": ["jazz", "outdoor"],
            "city": "Galle",
            "price": {"amount": 2500, "currency": "LKR"},
            "starts_at": "2026-12-05T19:30:00+05:30",
        }
    ).encode()
    content = event_content(document)
    assert (content["category"], content["city"]) == ("Music", "Galle")
    assert (content["tags"], content["price"]) == (["jazz", "outdoor"], 2500)
    assert content["utc_offset_s"] == 19_800
    assert content["starts_at"] == int(datetime(2026, 12, 5, 14, 0, tzinfo=UTC).timestamp())


def test_checksum_covers_every_byte_dtype_and_shape() -> None:
    factors = np.arange(6, dtype=np.float32).reshape(3, 2)
    raw, layout = {}, {}
    raw["item_factors"], layout["item_factors"] = array_bytes("item_factors", factors)
    raw["event_ids"], layout["event_ids"] = array_bytes("event_ids", np.array(["a", "b\nc", "d"]))
    assert layout["item_factors"] == {"dtype": "<f4", "shape": [3, 2], "bytes": 24}
    assert json.loads(raw["event_ids"]) == ["a", "b\nc", "d"]
    original = checksum(raw, layout)
    flipped = dict(raw, item_factors=raw["item_factors"][:-1] + b"\x01")
    assert checksum(flipped, layout) != original
    reshaped = dict(layout, item_factors={**layout["item_factors"], "shape": [2, 3]})
    assert checksum(raw, reshaped) != original


def test_a_fit_gives_every_array_with_its_dtype_and_the_time_cut_figures() -> None:
    log = _timed_planted_log()
    event_ids = [f"ev-{i}" for i in range(log.n_events)]
    documents = {
        event_id: json.dumps({"category": f"c{i % 10}", "city": "Kandy"}).encode()
        for i, event_id in enumerate(event_ids)
    }
    # Factors capped at 32: the grid's SVDs stay cheap on a 300-event catalogue.
    options = FitOptions(n_jobs=1, max_factor_cells=32 * len(log))
    fitted = fit_version(log, event_ids, documents, options)
    assert set(fitted.arrays) == set(ARRAY_DTYPES)
    assert fitted.arrays["item_factors"].shape == (
        log.n_events,
        fitted.metadata["params"]["n_factors"],
    )
    assert fitted.arrays["content_coef"].shape[1] == fitted.arrays["item_factors"].shape[1]
    assert fitted.metadata["kind"] == MODEL_KIND
    validation = fitted.metadata["validation"]
    assert validation["protocol"] == "time"
    assert validation["users"] >= 50
    assert validation["current"] is None
    assert validation["versus_current"] is None
    versus_trending = validation["versus_trending"]
    assert versus_trending["interval"][0] > 0  # the planted tastes beat trending clearly
    metrics = fitted.metadata["metrics"]
    assert metrics["validation_ndcg@10"] == validation["as_served"]["ndcg@10"]
    assert metrics["validation_ndcg@10"] > metrics["trending_validation_ndcg@10"]
    assert metrics["validation_ndcg@10"] > metrics["popularity_validation_ndcg@10"]
    assert 0 < metrics["precision@10"] <= 1
    assert 0 < metrics["recall@10"] <= 1
    assert (fitted.publish, fitted.metadata["gated"]) == (True, True)
    assert fitted.metadata["data"]["validation_users"] == validation["users"]
    assert fitted.metadata["search"]["validation"] == "time cut"
    assert {"factors", "betas", "grid", "winner"} <= set(fitted.metadata["search"])
    assert 8 in fitted.metadata["search"]["factors"]
    assert "category=c3" in fitted.metadata["content"]["featurizer"]["vocabulary"]
    # The hybrid's blend was learned on half of the validation users, judged on the rest.
    blend = fitted.metadata["hybrid"]["blend"]
    assert blend["model"] == "logistic_regression"
    assert blend["pairs"] > 0
    assert validation["blend_users"] > 0
    assert list(blend["weights"]) == list(FEATURES)
    assert sum(blend["shares"].values()) == pytest.approx(1.0)
    # At publish, new's weight was set by the exposure rule on users before the clock.
    # Undated events: none known to be on sale at the clock, nobody to expose them to.
    assert blend["exposure"]["users"] == 0
    terms = fitted.arrays["text_terms"].tolist()
    assert "category_c3" in terms
    assert len(terms) == len(fitted.arrays["text_idf"])
    table = blend_table(fitted.metadata)
    assert table.startswith("hybrid blend: learned")
    for name in FEATURES:
        assert f"  {name} " in table

    # Refitted against itself as the current version: the same configuration, no loss.
    again = fit_version(log, event_ids, documents, options, fitted.metadata)
    assert again.metadata["validation"]["current"]["same_configuration"] is True
    assert again.metadata["validation"]["versus_current"]["difference"] == 0.0
    assert again.publish

    # A current version of another configuration is refitted on the same records.
    weak = {**fitted.metadata, "params": {**fitted.metadata["params"], "n_factors": 1}}
    judged = fit_version(log, event_ids, documents, options, weak)
    assert judged.metadata["validation"]["current"]["same_configuration"] is False
    assert judged.metadata["validation"]["versus_current"]["difference"] > 0
    older = {key: value for key, value in fitted.metadata.items() if key != "kind"}
    assert (
        fit_version(log, event_ids, documents, options, older).metadata["validation"][
            "versus_current"
        ]
        is None
    )


def test_at_publish_never_touched_events_get_the_exposure_content_alone_gives_them() -> None:
    planted = _timed_planted_log()
    # 30 more events on sale that nobody touched, in the planted categories, placed first:
    # content alone ranks them with the touched ones of their category (ties: lower first).
    records = planted.records.copy()
    records["event"] += 30
    log = InteractionLog(planted.user, records, planted.n_users, planted.n_events + 30)
    event_ids = [f"ev-{i}" for i in range(log.n_events)]
    documents = {
        event_id: json.dumps(
            {
                "category": f"c{i % 10}",
                "city": "Kandy",
                "published_at": datetime.fromtimestamp(NOW - 90 * DAY, UTC).isoformat(),
                "starts_at": datetime.fromtimestamp(NOW + 30 * DAY, UTC).isoformat(),
            }
        ).encode()
        for i, event_id in enumerate(event_ids)
    }
    options = FitOptions(n_jobs=1, max_factor_cells=32 * len(log))
    fitted = fit_version(log, event_ids, documents, options)
    blend = fitted.metadata["hybrid"]["blend"]
    assert blend["model"] == "logistic_regression"
    exposure = blend["exposure"]
    assert exposure["users"] > 0
    # Content alone shows never-touched events in these users' top 10: the blend must too.
    assert exposure["new_in_top_k"] > 0
    # The blend learned that they are never booked: without the rule it would bury them.
    assert exposure["learned_weight"] < 0 < exposure["raised_by"]
    assert blend["weights"]["new"] == pytest.approx(
        exposure["learned_weight"] + exposure["raised_by"]
    )
    assert "raised by" in blend_table(fitted.metadata)


def test_a_log_too_small_for_a_model_raises_model_fit_error() -> None:
    tiny = InteractionLog.from_columns([0], [0], [TYPE_VIEW], [1], [NOW], n_users=1, n_events=1)
    with pytest.raises(ModelFitError):
        fit_version(tiny, ["ev-0"], {}, FitOptions(n_jobs=1))


def test_without_users_after_the_cut_the_version_is_published_ungated() -> None:
    # The planted log's users follow one another in time: nobody is active on both sides.
    log = planted_log(n_users=200)
    event_ids = [f"ev-{i}" for i in range(log.n_events)]
    options = FitOptions(n_jobs=1, max_factor_cells=16 * len(log))
    fitted = fit_version(log, event_ids, {}, options)
    assert (fitted.publish, fitted.metadata["gated"]) == (True, False)
    assert fitted.metadata["validation"]["protocol"] == "latest pairs"
    assert fitted.metadata["metrics"]["validation_ndcg@10"] is not None
    assert "too few to compare with trending" in fitted.reason
    # Nothing to teach a blend: the fixed collaborative-only one, marked as such.
    blend = fitted.metadata["hybrid"]["blend"]
    assert blend["model"] == COLLABORATIVE_ONLY
    assert "too few to learn a blend" in blend["fallback"]
    assert blend["weights"]["collaborative"] == 1.0
    assert "fixed, collaborative only" in blend_table(fitted.metadata)
