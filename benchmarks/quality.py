"""Quality benchmark: the time protocol on synthetic platforms where neither signal alone is
enough, every model on the same cuts, and a random split against a tuned plain PureSVD.

For each seed (1, 2, 3) and ``latent_share`` (0.3, 0.7) it generates a platform (default
30,000 users, 3,000 events, 1,000,000 interactions; ``--users/--events/--interactions``
for smaller runs), runs ``eventrec evaluate --split time``'s protocol with three cuts (70,
80, 90 % of the span) for ``popularity``, ``trending``, ``content``, ``cf``,
``guide_svd_cosine``, ``eventrec`` (the learned hybrid as serving answers it),
``hybrid`` (its alias, fitted once) and ``oracle`` (the planted tastes' expected
bookings), and on the first platform a random 80/20 split: eventrec against a plain
PureSVD whose rank is tuned on a random hold-back of the same training side.

Prints one JSON line with the keys ``runs``, ``models``, ``best_single``,
``ratio_to_best_single``, ``cold_ratio_to_content``, ``ratio_to_oracle``,
``random_split_ratio_to_puresvd``, computed for ``eventrec``; ``models["hybrid"]["ratios"]``
holds the same ratios for the alias (equal). Targets (issue #12): ratio_to_best_single
>= 1.25, cold_ratio_to_content >= 1.0, random_split_ratio_to_puresvd >= 0.95.

Usage: python benchmarks/quality.py [--users 30000 --events 3000 --interactions 1000000]
       python benchmarks/quality.py --from-logs LOG [LOG ...]  (the summary of the runs
       logged by earlier invocations, e.g. seeds run apart)
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from eventrec.evaluation.catalogue import load_events, load_profiles
from eventrec.evaluation.loader import load_interactions
from eventrec.evaluation.protocol import EventrecRanker, evaluate_log, evaluate_ranker, ranking_task
from eventrec.evaluation.splits import split_test_mask
from eventrec.evaluation.time_protocol import TIME_MODELS, TimeContext, evaluate_time
from eventrec.model.recommender import BINARY_WEIGHTS, EventrecModel, max_factors
from eventrec.model.records import InteractionLog
from eventrec.model.timecut import BUCKETS, cut_instants
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import generate
from eventrec.synth.truth import PlantedTastes, oracle_scores

SEEDS = (1, 2, 3)
SHARES = (0.3, 0.7)
CUTS = (0.7, 0.8, 0.9)
SINGLES = ("trending", "content", "cf", "guide_svd_cosine")
MODELS = ("popularity", *SINGLES, "eventrec", "hybrid", "oracle")
PURE_SVD_RANKS = (8, 16, 32, 64, 128)
NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)


class OracleAtCut:
    """The planted tastes: each user's expected bookings of each event in the horizon."""

    def __init__(
        self, truth: PlantedTastes, user_ids: list[str], event_ids: list[str], horizon: float
    ) -> None:
        self.truth, self.user_ids, self.event_ids, self.horizon = (
            truth,
            user_ids,
            event_ids,
            horizon,
        )
        self.params_: dict[str, Any] = {"scores": "planted expected bookings in the horizon"}

    def fit(self, context: TimeContext) -> OracleAtCut:
        self.cut_ = context.cut.cut
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        names = [self.user_ids[u] for u in users.tolist()]
        scores: np.ndarray = oracle_scores(
            self.truth, names, self.event_ids, self.cut_, self.horizon
        )
        return scores


class TunedPureSVD:
    """Plain PureSVD (binary, no popularity scaling), its rank tuned on a random 10 %
    hold-back of the training side it is given."""

    def __init__(self, random_state: int) -> None:
        self.random_state = random_state
        self.params_: dict[str, Any] = {}

    def _model(self, rank: int) -> EventrecModel:
        return EventrecModel(
            weights=BINARY_WEIGHTS,
            n_factors=rank,
            beta=0.0,
            weights_name="binary",
            random_state=self.random_state,
        )

    def fit(self, log: InteractionLog, raw_rating: np.ndarray) -> TunedPureSVD:
        held = split_test_mask(log, "random", 0.1, self.random_state)
        inner, check = log.subset(~held), log.subset(held)
        task = ranking_task(inner, check, raw_rating[held], 4.0)
        largest = max_factors(log.n_users, log.n_events)
        tried: dict[int, float] = {}
        for rank in sorted({min(r, largest) for r in PURE_SVD_RANKS}):
            ranker = _Fixed(self._model(rank))
            metrics = evaluate_ranker(ranker, inner, raw_rating[~held], task, 10, f"k{rank}")
            tried[rank] = float(metrics["ndcg@10"])
        chosen = max(tried, key=lambda r: (tried[r], -r))
        self.model_ = self._model(chosen).fit(log)
        self.params_ = {"n_factors": chosen, "validation_ndcg@10": tried}
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        scores: np.ndarray = self.model_.score(users)
        return scores


class _Fixed:
    def __init__(self, model: EventrecModel) -> None:
        self.model = model
        self.params_: dict[str, Any] = {}

    def fit(self, log: InteractionLog, raw_rating: np.ndarray) -> _Fixed:
        self.model.fit(log)
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        scores: np.ndarray = self.model.score(users)
        return scores


def _platform(args: argparse.Namespace, seed: int, share: float, directory: Path) -> Any:
    platform = generate(
        SynthConfig(
            n_users=args.users,
            n_events=args.events,
            n_interactions=args.interactions,
            seed=seed,
            latent_share=share,
            now=NOW,
        )
    )
    platform.write_jsonl(directory)
    platform.write_csv(directory / "interactions.csv")
    return platform


def one_run(
    args: argparse.Namespace, seed: int, share: float, random_split: bool
) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="eventrec-quality-") as name:
        directory = Path(name)
        platform = _platform(args, seed, share, directory)
        rated, _ = load_interactions(directory / "interactions.csv")
        event_index = {e: i for i, e in enumerate(rated.event_ids)}
        user_index = {u: i for i, u in enumerate(rated.user_ids)}
        catalogue = load_events(directory / "events.jsonl", event_index)
        profiles = load_profiles(directory / "users.jsonl", user_index)
    event_ids = [""] * len(event_index)
    for event_id, index in event_index.items():
        event_ids[index] = event_id
    log = InteractionLog(rated.log.user, rated.log.records, rated.log.n_users, len(event_index))
    truth = platform.truth.tastes()
    horizon = 30.0
    models = {name: TIME_MODELS[name] for name in MODELS if name != "oracle"}
    models["oracle"] = lambda s, j: OracleAtCut(truth, list(rated.user_ids), event_ids, horizon)
    started = time.perf_counter()
    result = evaluate_time(
        log,
        rated.raw_rating,
        cut_instants(log.records["time"], list(CUTS)),
        documents=catalogue.documents,
        dates=catalogue.dates,
        profiles=profiles,
        horizon_days=horizon,
        seed=seed,
        n_jobs=args.n_jobs,
        models=models,
    )
    run: dict[str, Any] = {
        "seed": seed,
        "latent_share": share,
        "interactions": len(log),
        "seconds": round(time.perf_counter() - started, 1),
        "models": {
            name: {
                "ndcg@10": metrics["ndcg@10"],
                "buckets": {b: metrics["buckets"][b]["ndcg@10"] for b in BUCKETS},
            }
            for name, metrics in result["models"].items()
        },
    }
    if random_split:
        test = split_test_mask(log, "random", 0.2, seed)
        split = evaluate_log(
            log.subset(~test),
            log.subset(test),
            split="random",
            test_fraction=0.2,
            train_raw_rating=rated.raw_rating[~test],
            test_raw_rating=rated.raw_rating[test],
            seed=seed,
            n_jobs=args.n_jobs,
            with_rmse=False,
            rankers={
                "eventrec": lambda s, j: EventrecRanker(s, j, "random"),
                "puresvd": lambda s, j: TunedPureSVD(s),
            },
        )
        run["random_split"] = {
            name: {"ndcg@10": m["ndcg@10"], "params": m["params"]}
            for name, m in split["models"].items()
        }
    logging.getLogger("eventrec.bench").info("run %s", json.dumps(run))
    return run


def _ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def _minimum(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return min(known) if len(known) == len(values) and known else None


def ratios(runs: list[dict[str, Any]], model: str) -> dict[str, float | None]:
    """The issue's ratios for ``model`` (minimum over runs)."""
    to_best, cold, to_oracle = [], [], []
    for run in runs:
        figures = run["models"]
        best = max(figures[name]["ndcg@10"] or 0.0 for name in SINGLES)
        to_best.append(_ratio(figures[model]["ndcg@10"], best))
        cold.append(_ratio(figures[model]["buckets"]["0"], figures["content"]["buckets"]["0"]))
        to_oracle.append(_ratio(figures[model]["ndcg@10"], figures["oracle"]["ndcg@10"]))
    return {
        "ratio_to_best_single": _minimum(to_best),
        "cold_ratio_to_content": _minimum(cold),
        "ratio_to_oracle": _minimum(to_oracle),
    }


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    def mean(values: list[float | None]) -> float | None:
        known = [v for v in values if v is not None]
        return float(np.mean(known)) if known else None

    models: dict[str, dict[str, Any]] = {
        name: {
            "ndcg@10": mean([run["models"][name]["ndcg@10"] for run in runs]),
            "buckets": {
                b: mean([run["models"][name]["buckets"][b] for run in runs]) for b in BUCKETS
            },
        }
        for name in MODELS
    }
    best_single = max(SINGLES, key=lambda name: float(models[name]["ndcg@10"] or 0.0))
    eventrec = ratios(runs, "eventrec")
    models["hybrid"]["ratios"] = ratios(runs, "hybrid")
    split = next((run["random_split"] for run in runs if "random_split" in run), None)
    return {
        "runs": runs,
        "models": models,
        "best_single": best_single,
        "ratio_to_best_single": eventrec["ratio_to_best_single"],
        "cold_ratio_to_content": eventrec["cold_ratio_to_content"],
        "ratio_to_oracle": eventrec["ratio_to_oracle"],
        "random_split_ratio_to_puresvd": _ratio(
            split["eventrec"]["ndcg@10"], split["puresvd"]["ndcg@10"]
        )
        if split
        else None,
    }


def logged_runs(paths: list[str]) -> list[dict[str, Any]]:
    """The runs earlier invocations logged (``... run {json}`` lines on stderr), in order,
    the one with the random split first."""
    runs = [
        json.loads(line.split(" run ", 1)[1])
        for path in paths
        for line in Path(path).read_text().splitlines()
        if " run {" in line
    ]
    return sorted(runs, key=lambda run: "random_split" not in run)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=30_000)
    parser.add_argument("--events", type=int, default=3_000)
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--shares", type=float, nargs="+", default=list(SHARES))
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--from-logs", nargs="+", default=None, metavar="LOG")
    args = parser.parse_args()
    if args.from_logs:
        print(json.dumps(summary(logged_runs(args.from_logs))))
        return
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(message)s")
    runs = [
        one_run(args, seed, share, random_split=first)
        for first, (seed, share) in zip(
            [True] + [False] * 100,
            [(seed, share) for seed in args.seeds for share in args.shares],
            strict=False,
        )
    ]
    print(json.dumps(summary(runs)))


if __name__ == "__main__":
    main()
