"""Planted tastes: the learned hybrid at a time cut on a small synthetic platform."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from eventrec.evaluation.catalogue import Catalogue, load_events, load_profiles
from eventrec.evaluation.hybrid import HybridEventrec
from eventrec.evaluation.loader import load_interactions
from eventrec.evaluation.time_protocol import TIME_MODELS, TimeContext, evaluate_time
from eventrec.model.hybrid_features import FEATURES
from eventrec.model.records import InteractionLog
from eventrec.model.timecut import cut_instants, time_cut
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import generate


@pytest.fixture(scope="module")
def latent_platform(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Most of each user's taste is latent (performers, organizers, series, scenes)."""
    directory = tmp_path_factory.mktemp("latent")
    platform = generate(
        SynthConfig(
            n_users=1500,
            n_events=250,
            n_interactions=40_000,
            seed=3,
            latent_share=0.7,
            now=datetime(2026, 11, 30, 12, tzinfo=UTC),
        )
    )
    platform.write_jsonl(directory)
    platform.write_csv(directory / "interactions.csv")
    return directory


def _inputs(
    directory: Path,
) -> tuple[InteractionLog, np.ndarray, Catalogue, list[dict[str, Any] | None]]:
    rated, _ = load_interactions(directory / "interactions.csv")
    event_index = {e: i for i, e in enumerate(rated.event_ids)}
    user_index = {u: i for i, u in enumerate(rated.user_ids)}
    catalogue = load_events(directory / "events.jsonl", event_index)
    profiles = load_profiles(directory / "users.jsonl", user_index)
    log = InteractionLog(rated.log.user, rated.log.records, rated.log.n_users, len(event_index))
    return log, rated.raw_rating, catalogue, profiles


def test_the_hybrid_finds_latent_tastes_on_cold_events_that_content_alone_misses(
    latent_platform: Path,
) -> None:
    log, raw_rating, catalogue, profiles = _inputs(latent_platform)
    names = ("trending", "content", "cf", "hybrid")
    result = evaluate_time(
        log,
        raw_rating,
        cut_instants(log.records["time"], [0.8]),
        documents=catalogue.documents,
        dates=catalogue.dates,
        profiles=profiles,
        n_jobs=1,
        models={name: TIME_MODELS[name] for name in names},
    )
    models = result["models"]
    assert models["hybrid"]["buckets"]["0"]["relevant"] > 0
    cold = {name: models[name]["buckets"]["0"]["ndcg@10"] for name in names}
    assert cold["hybrid"] > cold["content"], cold
    overall = {name: models[name]["ndcg@10"] for name in names}
    assert overall["hybrid"] > max(overall[n] for n in ("trending", "content", "cf")), overall
    blend = models["hybrid"]["params"]["blend"]
    assert list(blend["weights"]) == list(FEATURES)
    assert sum(blend["shares"].values()) == pytest.approx(1.0)


def test_a_user_nothing_is_known_about_still_gets_what_is_trending(
    latent_platform: Path,
) -> None:
    log, raw_rating, catalogue, profiles = _inputs(latent_platform)
    dates = catalogue.dates
    cut = time_cut(
        log, cut_instants(log.records["time"], [0.8])[0], 30.0, raw_rating=raw_rating, dates=dates
    )
    strangers = np.setdiff1d(np.arange(log.n_users), cut.train.user)[:20]
    assert len(strangers) == 20
    anonymous = list(profiles)
    for user in strangers.tolist():
        anonymous[user] = None  # no history before the cut, no profile
    context = TimeContext(
        cut=cut,
        raw_rating=raw_rating[cut.train_index],
        documents=catalogue.documents,
        profiles=anonymous,
        dates=dates,
        horizon_days=30.0,
        relevant_min_rating=4.0,
        n_jobs=1,
    )
    hybrid = HybridEventrec(random_state=0, n_jobs=1).fit(context)
    candidates = np.flatnonzero(cut.candidates)
    trending = hybrid.at_cut_.base.served_.trending[candidates]
    trending_top = set(candidates[np.argsort(-trending, kind="stable")[:10]].tolist())
    scores = hybrid.score(strangers)[:, candidates]
    for row in scores:
        top = set(candidates[np.argsort(-row, kind="stable")[:10]].tolist())
        assert len(top & trending_top) >= 7
