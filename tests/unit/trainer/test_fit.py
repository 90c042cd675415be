"""The trainer's store-free parts: trending, the publish gate, one fit's version contents."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest

from eventrec.model.content import event_content
from eventrec.model.errors import ModelFitError
from eventrec.model.records import (
    TYPE_BOOKING,
    TYPE_BOOKING_CANCELLED,
    TYPE_DISMISS,
    TYPE_SAVE,
    TYPE_VIEW,
    InteractionLog,
)
from eventrec.store.versions import ARRAY_DTYPES, array_bytes, checksum
from eventrec.trainer.fit import FitOptions, fit_version, publish_gate, trending_scores
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


@pytest.mark.parametrize(
    ("users", "model", "popularity", "publish", "gated"),
    [
        (49, 0.01, 0.5, True, False),  # too few to judge: published, marked ungated
        (50, 0.30, 0.10, True, True),
        (50, 0.10, 0.10, False, True),  # a tie does not beat popularity
        (5000, 0.09, 0.10, False, True),
    ],
)
def test_publish_gate(
    users: int, model: float, popularity: float, publish: bool, gated: bool
) -> None:
    decision = publish_gate(users, model, popularity)
    assert decision[:2] == (publish, gated)
    assert str(users) in decision[2]


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


def test_a_fit_gives_every_array_with_its_dtype_and_the_metrics() -> None:
    log = planted_log(n_users=300)
    event_ids = [f"ev-{i}" for i in range(log.n_events)]
    documents = {
        event_id: json.dumps({"category": f"c{i % 10}", "city": "Kandy"}).encode()
        for i, event_id in enumerate(event_ids)
    }
    fitted = fit_version(log, event_ids, documents, FitOptions(n_jobs=1))
    assert set(fitted.arrays) == set(ARRAY_DTYPES)
    assert fitted.arrays["item_factors"].shape == (
        log.n_events,
        fitted.metadata["params"]["n_factors"],
    )
    assert fitted.arrays["content_coef"].shape[1] == fitted.arrays["item_factors"].shape[1]
    metrics = fitted.metadata["metrics"]
    assert metrics["validation_ndcg@10"] > metrics["popularity_validation_ndcg@10"]
    assert 0 < metrics["precision@10"] <= 1
    assert 0 < metrics["recall@10"] <= 1
    assert (fitted.publish, fitted.metadata["gated"]) == (True, True)
    assert fitted.metadata["data"] == {
        "users": 300,
        "users_with_interactions": 300,
        "events": log.n_events,
        "interactions": len(log),
        "validation_users": fitted.metadata["search"]["validation_users"],
    }
    assert fitted.metadata["data"]["validation_users"] >= 50
    assert {"factors", "betas", "grid", "winner"} <= set(fitted.metadata["search"])
    assert "category=c3" in fitted.metadata["content"]["featurizer"]["vocabulary"]


def test_a_log_too_small_for_a_model_raises_model_fit_error() -> None:
    tiny = InteractionLog.from_columns([0], [0], [TYPE_VIEW], [1], [NOW], n_users=1, n_events=1)
    with pytest.raises(ModelFitError):
        fit_version(tiny, ["ev-0"], {}, FitOptions(n_jobs=1))
