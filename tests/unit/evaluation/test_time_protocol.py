"""`eventrec evaluate --split time` on a small synthetic platform, and eventrec as served."""

from __future__ import annotations

import argparse
import json
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from eventrec.config import Settings
from eventrec.evaluation.catalogue import load_events, load_profiles
from eventrec.evaluation.command import register
from eventrec.evaluation.hybrid import HybridEventrec
from eventrec.evaluation.loader import load_interactions
from eventrec.evaluation.time_protocol import TimeContext, documents_at, rank
from eventrec.model.hybrid import catalogue_interactions
from eventrec.model.records import InteractionLog
from eventrec.model.timecut import BUCKETS, cut_instants, rank_cut, time_cut
from eventrec.serving.catalog import Catalog, Filters
from eventrec.serving.scoring import answer_rows
from eventrec.serving.state import HybridState, ServingState, catalog_factors
from eventrec.store.versions import LoadedModel
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import generate

MODELS = ["popularity", "trending", "content", "cf", "guide_svd_cosine", "eventrec", "hybrid"]


@pytest.fixture(scope="module")
def platform_files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("platform")
    platform = generate(
        SynthConfig(
            n_users=1500,
            n_events=250,
            n_interactions=40_000,
            seed=3,
            now=datetime(2026, 11, 30, 12, tzinfo=UTC),
        )
    )
    platform.write_jsonl(directory)
    platform.write_csv(directory / "interactions.csv")
    return directory


def run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="eventrec")
    register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    code: int = args.handler(args, Settings())
    return code


def test_time_split_writes_every_model_with_buckets_new_users_and_cuts(
    platform_files: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "time.json"
    argv = ["evaluate", "--interactions", str(platform_files / "interactions.csv")]
    argv += ["--split", "time", "--events", str(platform_files / "events.jsonl")]
    argv += ["--users", str(platform_files / "users.jsonl"), "--json", str(out)]
    assert run(argv) == 0
    result = json.loads(out.read_text())
    assert set(result) == {"protocol", "data", "models", "rmse", "cuts"}
    assert result["protocol"]["split"] == "time"
    assert len(result["protocol"]["cuts"]) == len(result["cuts"]) == 3
    assert list(result["models"]) == MODELS
    for metrics in result["models"].values():
        assert {"precision@10", "recall@10", "f1@10", "ndcg@10", "coverage"} <= set(metrics)
        assert list(metrics["buckets"]) == list(BUCKETS)
        for bucket in metrics["buckets"].values():
            assert set(bucket) == {"ndcg@10", "recall@10", "relevant"}
        assert set(metrics["new_users"]) == {"ndcg@10", "recall@10", "users"}
    # Every model is judged on the same relevant pairs, bucket by bucket.
    counts = {
        name: [m["buckets"][b]["relevant"] for b in BUCKETS] for name, m in result["models"].items()
    }
    assert len({tuple(c) for c in counts.values()}) == 1
    per_cut = sum(cut["relevant"] for cut in result["cuts"])
    assert sum(counts["eventrec"]) == per_cut
    assert result["models"]["trending"]["params"]["half_life_days"] in (1, 3, 7, 14, 30, 90)
    table = capsys.readouterr().out
    assert "new_users" in table
    assert "NDCG@10 per cut" in table


def _context(platform_files: Path) -> tuple[TimeContext, list[str]]:
    rated, _ = load_interactions(platform_files / "interactions.csv")
    event_index = {event_id: i for i, event_id in enumerate(rated.event_ids)}
    user_index = {user_id: i for i, user_id in enumerate(rated.user_ids)}
    catalogue = load_events(platform_files / "events.jsonl", event_index)
    profiles = load_profiles(platform_files / "users.jsonl", user_index)
    log = InteractionLog(rated.log.user, rated.log.records, rated.log.n_users, len(event_index))
    instant = cut_instants(log.records["time"], [0.8])[0]
    cut = time_cut(log, instant, 30.0, raw_rating=rated.raw_rating, dates=catalogue.dates)
    context = TimeContext(
        cut=cut,
        raw_rating=rated.raw_rating[cut.train_index],
        documents=catalogue.documents,
        profiles=profiles,
        dates=catalogue.dates,
        horizon_days=30.0,
        relevant_min_rating=4.0,
    )
    return context, list(event_index)


def _serving_state(
    model: HybridEventrec, context: TimeContext, event_ids: list[str]
) -> ServingState:
    """What serving would hold at the cut: the version (with its blend and TF-IDF) and the
    catalogue as it stood then (every event published by the cut, past ones too)."""
    served = model.at_cut_.base.served_
    published = documents_at(context.documents, context.dates, context.cut)
    known = [i for i, d in enumerate(published) if d is not None]
    documents = {event_ids[i]: json.dumps(published[i]).encode() for i in known}
    catalog = Catalog.from_documents(documents)
    loaded = LoadedModel(
        version="v000001",
        metadata={},
        event_ids=event_ids,
        item_factors=served.model.item_factors_,
        singular_values=served.model.svd_.singular_values_,
        column_scale=served.model.column_scale_,
        popularity=served.model.popularity_,
        trending=served.trending,
        content_map=served.content_map,
        featurizer=served.featurizer,
        model=served.model,
        blend=model.blend_,
        text=model.at_cut_.text,
    )
    model_index, factors = catalog_factors(loaded, catalog)
    trending = served.trending[model_index]
    return ServingState(
        catalog=catalog,
        model=loaded,
        catalog_factors=factors,
        catalog_model_index=model_index,
        trending=trending,
        store_event_ids=event_ids,
        catalog_version=1,
        model_version="v000001",
        built_at=0.0,
        # Shared terms at the request's own instant (serving rounds it to the minute).
        hybrid=HybridState.build(
            model.blend_,
            model.at_cut_.text,
            catalog,
            factors,
            trending,
            context.cut.cut,
            0.0,
            interactions=catalogue_interactions(loaded.popularity, model_index),
        ),
    )


def test_the_evaluation_ranks_exactly_as_serving_answers_at_the_cut(
    platform_files: Path,
) -> None:
    context, event_ids = _context(platform_files)
    model = HybridEventrec(random_state=0, n_jobs=1).fit(context)
    assert model.blend_.n_pairs_ > 0  # a learned blend, not the fallback
    # Its `new` weight set at the cut by the exposure rule, over users with a record.
    assert model.blend_.exposure_["users"] > 0
    assert model.at_cut_.catalogue.new[np.flatnonzero(context.cut.candidates)].any()
    cut = context.cut
    users = np.concatenate((cut.users[:150], cut.new_users[:50]))
    recommended = rank_cut(model.score, users, cut.candidates, cut.exclude, 10)
    # The protocol ranks by the pruned exact top-k: the same as scoring every event.
    assert rank(model, users, cut, 10).tolist() == recommended.tolist()

    state = _serving_state(model, context, event_ids)
    train = cut.train
    rows = [train.records[train.user == user] for user in users.tolist()]
    profiles = [context.profiles[u] for u in users.tolist()]
    answers, _ = answer_rows(
        state,
        list(rows),
        [Filters()] * len(rows),
        [10] * len(rows),
        now=cut.cut,
        profiles=profiles,
    )
    blended = 0
    for row, answer in enumerate(answers):
        evaluated = [event_ids[e] for e in recommended[row].tolist() if e >= 0]
        if answer.positions is None:
            assert not profiles[row]
            assert not len(rows[row])
            continue
        blended += 1
        served = [state.catalog.event_ids[p] for p in answer.positions.tolist()]
        assert served == evaluated, f"user {users[row]}"
    assert blended >= 0.9 * len(users)
