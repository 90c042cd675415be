"""Recommendation quality on synthetic data whose right answers are planted."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import numpy as np
import pytest

from eventrec.evaluation.protocol import DEFAULT_RANKERS, evaluate_log
from eventrec.evaluation.splits import split_test_mask
from eventrec.model.content import EventFeaturizer, event_content
from eventrec.model.content_map import ContentMap, blend
from eventrec.model.recommender import EventrecModel
from eventrec.model.records import InteractionLog
from eventrec.model.search import EventrecSearch
from eventrec.schemas import Event, Price, encode
from eventrec.synth.catalog import COLOMBO_TIME, STATUS_SCHEDULED
from eventrec.synth.config import SynthConfig
from eventrec.synth.funnel import propensity
from eventrec.synth.platform import SyntheticPlatform, generate
from eventrec.synth.vocabulary import CATEGORIES, CITIES
from eventrec.trainer.fit import FitOptions, fit_version
from tests.unit.model.conftest import planted_log
from tests.unit.trainer.conftest import PlatformLog, platform_log


class PlantedOracle:
    """Ranks by the generator's own propensities: the ceiling any model can reach."""

    def __init__(self, platform: SyntheticPlatform) -> None:
        self.platform = platform
        self.params_: dict[str, Any] = {}

    def fit(self, log: InteractionLog, raw_rating: np.ndarray) -> PlantedOracle:
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        scores: np.ndarray = propensity(self.platform.user_table, self.platform.event_table, users)
        return scores


def _ndcg(log: InteractionLog, rankers: dict[str, Any] | None = None) -> dict[str, float]:
    test = split_test_mask(log, "random", 0.2, 42)
    result = evaluate_log(
        log.subset(~test), log.subset(test), seed=42, with_rmse=False, rankers=rankers
    )
    return {name: metrics["ndcg@10"] for name, metrics in result["models"].items()}


@pytest.fixture(scope="module")
def platform() -> PlatformLog:
    # Category tastes only (no latent performers, series, scenes), as this test was built on.
    return platform_log(
        generate(SynthConfig(n_users=3000, n_events=500, n_interactions=90_000, latent_share=0.0))
    )


def test_beats_popularity_twice_and_the_guide_three_times_on_planted_clusters() -> None:
    ndcg = _ndcg(planted_log(n_users=2000))
    assert ndcg["eventrec"] >= 2 * ndcg["popularity"], ndcg
    assert ndcg["eventrec"] >= 3 * ndcg["guide_svd_cosine"], ndcg


def test_beats_popularity_twice_and_nears_the_planted_ceiling_on_the_platform(
    platform: PlatformLog,
) -> None:
    rankers = {**DEFAULT_RANKERS, "oracle": lambda seed, n_jobs: PlantedOracle(platform.platform)}
    ndcg = _ndcg(platform.log, rankers)
    assert ndcg["eventrec"] >= 2 * ndcg["popularity"], ndcg
    # Since #11 the planted propensity also has a time on sale and wider popularity, which a
    # CF model alone does not see (by design): eventrec measured 0.62 of the ceiling here.
    assert ndcg["eventrec"] >= 0.5 * ndcg["oracle"], ndcg
    assert ndcg["eventrec"] >= 2 * ndcg["guide_svd_cosine"], ndcg


@pytest.fixture(scope="module")
def held_out(platform: PlatformLog) -> dict[str, Any]:
    """150 active users held out of the fit entirely, and a model fitted without them."""
    log = platform.log
    rng = np.random.default_rng(0)
    active = np.flatnonzero(np.bincount(log.user, minlength=log.n_users) >= 15)
    users = np.sort(rng.choice(active, size=150, replace=False))
    is_held = np.zeros(log.n_users, dtype=bool)
    is_held[users] = True
    train = log.subset(~is_held[log.user])
    fitted = fit_version(train, platform.event_ids, platform.documents, FitOptions())
    arrays = fitted.arrays
    model = EventrecSearch(random_state=0).fit(train).best_estimator_
    config, events = platform.platform.config, platform.platform.event_table
    upcoming = (
        (events.starts_at > config.now_epoch)
        & (events.published_at <= config.now_epoch)
        & (events.status == STATUS_SCHEDULED)
    )
    return {
        "users": users,
        "rows": [log.records[log.user == user] for user in users],
        "model": model,
        "fitted": fitted,
        "featurizer": EventFeaturizer.from_dict(fitted.metadata["content"]["featurizer"]),
        "content_map": ContentMap.from_arrays({"coef": arrays["content_coef"], "alpha": 1.0}),
        "upcoming": upcoming,
    }


def _eligible(held_out: dict[str, Any], row: np.ndarray) -> np.ndarray:
    eligible: np.ndarray = held_out["upcoming"].copy()
    eligible[row["event"]] = False
    return eligible


def test_fold_in_of_held_out_users_finds_their_planted_favourites(
    platform: PlatformLog, held_out: dict[str, Any]
) -> None:
    model: EventrecModel = held_out["model"]
    scores = model.score_rows(held_out["rows"])
    found, found_by_popularity = [], []
    for position, user in enumerate(held_out["users"]):
        favourites = set(platform.platform.truth.favourite_events(platform.user_ids[user], 10))
        eligible = _eligible(held_out, held_out["rows"][position])
        for ranking, hits in (
            (scores[position], found),
            (model.popularity_.astype(np.float64), found_by_popularity),
        ):
            ranked = np.where(eligible, ranking, -np.inf)
            top10 = {platform.event_ids[e] for e in np.argsort(-ranked, kind="stable")[:10]}
            hits.append(bool(favourites & top10))
    hit_rate, popularity_rate = float(np.mean(found)), float(np.mean(found_by_popularity))
    assert hit_rate >= 0.75, (hit_rate, popularity_rate)
    assert hit_rate >= popularity_rate + 0.2, (hit_rate, popularity_rate)


def _new_event(category: str, city: str, price: float, platform: PlatformLog) -> bytes:
    starts = (platform.platform.config.now + timedelta(days=14)).astimezone(COLOMBO_TIME)
    kind = next(c for c in CATEGORIES if c.name == category)
    event = Event(
        schema_version=1,
        event_id="ev-published-after-the-fit",
        title=f"New {category} night",
        category=category,
        tags=list(kind.tags[:3]),
        city=city,
        venue="New Venue",
        price=Price(amount=int(price), currency="LKR"),
        starts_at=starts.replace(hour=19, minute=0, second=0, microsecond=0),
    )
    return encode(event)


def test_an_event_published_after_the_fit_reaches_matching_users_top_20(
    platform: PlatformLog, held_out: dict[str, Any]
) -> None:
    fitted = held_out["fitted"]
    item_factors = fitted.arrays["item_factors"]
    model = EventrecModel.from_arrays(
        {
            "item_factors": item_factors,
            "singular_values": fitted.arrays["singular_values"],
            "column_scale": fitted.arrays["column_scale"],
            "popularity": fitted.arrays["popularity"],
            "now": np.array(fitted.metadata["model"]["now"]),
            "params": np.array(json.dumps(fitted.metadata["params"])),
        }
    )
    users_table = platform.platform.user_table
    matching_ranks, mismatching_ranks = [], []
    for position, user in enumerate(held_out["users"]):
        taste = CATEGORIES[users_table.preferred[user][0]]
        home = CITIES[users_table.city[user]]
        budget = float(users_table.budget_max[user])
        disliked = next(c for c in CATEGORIES if c.name not in _preferred_names(users_table, user))
        far = max(CITIES, key=lambda c: abs(c.latitude - home.latitude))
        row = held_out["rows"][position]
        user_vector = model.fold_in_rows([row])[0]
        existing = item_factors @ user_vector
        eligible = _eligible(held_out, row)
        for document, ranks in (
            (
                _new_event(taste.name, home.name, min(taste.median_price, budget), platform),
                matching_ranks,
            ),
            (
                _new_event(disliked.name, far.name, disliked.median_price, platform),
                mismatching_ranks,
            ),
        ):
            features = held_out["featurizer"].transform([event_content(document)])
            content_vector = held_out["content_map"].predict(features)
            # No interactions yet: blend gives the content vector all the weight.
            vector = blend(np.zeros_like(content_vector), content_vector, [0])[0]
            ranks.append(int((existing[eligible] > vector @ user_vector).sum()))
    matching, mismatching = np.array(matching_ranks), np.array(mismatching_ranks)
    assert np.mean(matching < 20) >= 0.8, np.percentile(matching, [10, 50, 90])
    assert np.median(mismatching) > 3 * max(np.median(matching), 5)


def _preferred_names(users_table: Any, user: int) -> set[str]:
    return {CATEGORIES[c].name for c in users_table.preferred[user] if c >= 0}
