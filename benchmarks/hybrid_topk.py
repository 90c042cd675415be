"""The hybrid's top-k per request, in one process: CPU of serving's scoring alone.

`benchmarks/serve.py` measures the whole server; this measures the part the learned hybrid
adds, :func:`eventrec.serving.scoring.answer_rows` on batches of users, against the same
batches answered by the collaborative part alone (the baseline, same run, same state).
The platform is serve.py's: 50,000 upcoming events in 200 clusters, users with 10-30
records mostly from 2-3 liked clusters, a 64-factor model fitted on them and the blend
learned as the trainer learns it. No broker, no Redis: the rows are handed over as read.

Also checks, on a sample of users, that the pruned top-k equals ranking every eligible
event by the same blend (:func:`eventrec.model.hybrid_topk.hybrid_scores`).

Prints one JSON line (microseconds of CPU per request). Usage:
python benchmarks/hybrid_topk.py [--events 50000 --users 20000 --batch 8]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run as a script

from benchmarks.serve import event_document, fit_blend_as_trainer, planted_rows
from eventrec.model.hybrid import catalogue_interactions
from eventrec.model.hybrid_topk import hybrid_scores
from eventrec.model.metrics import top_k
from eventrec.model.recommender import EventrecModel
from eventrec.model.records import InteractionLog
from eventrec.serving.catalog import Catalog, Filters
from eventrec.serving.scoring import answer_rows
from eventrec.serving.state import HybridState, ServingState
from eventrec.trainer.fit import fit_text


def log(message: str) -> None:
    print(f"[hybrid-topk] {message}", file=sys.stderr, flush=True)


def build(n_users: int, n_events: int, now: float) -> tuple[ServingState, list[np.ndarray]]:
    data = planted_rows(n_users, n_events, int(now))
    event_ids = [f"ev-{i:06d}" for i in range(n_events)]
    rng = np.random.default_rng(1)
    documents = {
        event_ids[i]: event_document(event_ids[i], i, int(data["cluster_of_event"][i]), rng)
        for i in range(n_events)
    }
    catalog = Catalog.from_documents(documents)
    order = np.array([catalog.position[e] for e in event_ids])
    log_ = InteractionLog.from_columns(
        user=data["user"].astype(np.int32),
        event=order[data["event"]],
        kind=data["kind"],
        value=data["value"],
        time=data["time"],
        aux=data["aux"],
        n_events=n_events,
    )
    parsed = list(catalog.documents)
    started = time.perf_counter()
    blend, _ = fit_blend_as_trainer(log_, parsed)
    text = fit_text(parsed)
    model = EventrecModel(n_factors=64, random_state=0).fit(log_)
    log(f"model and blend in {time.perf_counter() - started:.1f} s")
    loaded: Any = SimpleNamespace(
        item_factors=model.item_factors_,
        column_scale=model.column_scale_,
        model=model,
        blend=blend,
        text=text,
        popularity=model.popularity_,
    )
    factors = model.item_factors_.astype(np.float32)
    trending = np.bincount(log_.records["event"], minlength=n_events).astype(np.float32)
    hybrid = HybridState.build(
        blend,
        text,
        catalog,
        factors,
        trending,
        now,
        interactions=catalogue_interactions(model.popularity_, np.arange(n_events)),
    )
    state = ServingState(
        catalog=catalog,
        model=loaded,
        catalog_factors=factors,
        catalog_model_index=np.arange(n_events),
        trending=trending,
        store_event_ids=list(catalog.event_ids),
        catalog_version=1,
        model_version="bench",
        built_at=now,
        hybrid=hybrid,
    )
    bounds = np.searchsorted(log_.user, np.arange(n_users + 1))
    rows = [log_.records[bounds[u] : bounds[u + 1]] for u in range(n_users)]
    return state, rows


def cpu_per_request(
    state: ServingState, rows: list[np.ndarray], batch: int, now: float, seconds: float
) -> dict[str, float]:
    rng = np.random.default_rng(7)
    done, scanned = 0, 0
    started, wall = time.process_time(), time.perf_counter()
    while time.perf_counter() - wall < seconds:
        picked = rng.integers(0, len(rows), batch)
        _, seen = answer_rows(
            state,
            [rows[u] for u in picked.tolist()],
            [Filters()] * batch,
            [10] * batch,
            now,
        )
        done += batch
        scanned += seen
    cpu = time.process_time() - started
    return {"cpu_us": round(1e6 * cpu / done, 1), "requests": done, "scored": scanned / done}


def check_exact(state: ServingState, rows: list[np.ndarray], now: float, n: int) -> int:
    """Users whose pruned top 10 differs from ranking every eligible event."""
    hybrid = state.hybrid
    assert hybrid is not None
    wrong = 0
    rng = np.random.default_rng(3)
    for u in rng.integers(0, len(rows), n).tolist():
        answers, _ = answer_rows(state, [rows[u]], [Filters()], [10], now)
        answer = answers[0]
        assert answer.signals is not None
        assert answer.mask is not None
        clock = answer.clock
        scores = hybrid_scores(
            hybrid.blend, hybrid.catalogue, answer.signals, clock, hybrid.shared_and_max(now)[0]
        )[0]
        expected = top_k(np.where(answer.mask, scores, -np.inf)[None, :], 10)[0]
        if not np.array_equal(expected, answer.positions):
            wrong += 1
    return wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--check", type=int, default=200)
    args = parser.parse_args()
    now = time.time()
    state, rows = build(args.users, args.events, now)
    answer_rows(state, rows[:8], [Filters()] * 8, [10] * 8, now)  # warm caches
    hybrid = cpu_per_request(state, rows, args.batch, now, args.seconds)
    plain = cpu_per_request(state.collaborative_only(), rows, args.batch, now, args.seconds)
    wrong = check_exact(state, rows, now, args.check)
    result = {
        "events": args.events,
        "users": args.users,
        "batch": args.batch,
        "hybrid": hybrid,
        "collaborative": plain,
        "ratio_cpu": round(hybrid["cpu_us"] / plain["cpu_us"], 2),
        "checked_users": args.check,
        "not_exact": wrong,
    }
    print(json.dumps(result))
    return 0 if wrong == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
