"""Training benchmark: one trainer cycle at 5M interactions against implicit's ALS.

Generates planted-taste interactions (users like 2-3 of 200 event clusters; Zipf popularity
within a cluster, 10% popular noise; views, saves, bookings, cancellations, ratings,
dismissals over 180 days), loads them into a Redis of its own through the store (id maps,
the binary rows the consumer writes, the catalog), then measures in one run:

- snapshot_seconds / snapshot_rate: ``Store.snapshot`` of every row;
- refit_total_seconds: one full trainer cycle (snapshot, trending, search, refit, content
  map, rating RMSE, gate, version write, switch, prune) — ``Trainer.cycle``;
- fit_seconds_k64: ``PureSVD(64)`` on the aggregated confidence matrix, no search;
- implicit_als_seconds: ``implicit.als.AlternatingLeastSquares(factors=64,
  iterations=15)`` on the very same CSR matrix;
- peak_rss_mb: the whole process's peak resident set (generation and ALS included).

Prints one JSON line. Usage: python benchmarks/train.py [--interactions 5000000]
"""

from __future__ import annotations

import argparse
import json
import logging
import resource
import sys
import time
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.model.aggregate import aggregate
from eventrec.model.records import (
    RECORD_DTYPE,
    TYPE_BOOKING,
    TYPE_BOOKING_CANCELLED,
    TYPE_DISMISS,
    TYPE_RATING,
    TYPE_SAVE,
    TYPE_VIEW,
)
from eventrec.model.svd import PureSVD
from eventrec.store import Store, connect
from eventrec.store.keys import OWNER_SHARDS
from eventrec.store.versions import load_version
from eventrec.trainer.loop import Trainer

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 6
CATEGORIES = ("music", "theatre", "sports", "comedy", "food", "art", "workshop", "festival")
CITIES = ("Colombo", "Kandy", "Galle", "Jaffna", "Negombo", "Matara")
NOW = int(datetime(2026, 11, 1, 12, tzinfo=UTC).timestamp())
DAY = 86_400


def planted_interactions(
    n_users: int, n_events: int, n_interactions: int, seed: int = 0, n_clusters: int = 200
) -> dict[str, np.ndarray]:
    """Columns of interactions, sorted by user then time; events carry their cluster."""
    rng = np.random.default_rng(seed)
    activity = rng.lognormal(0.0, 0.8, n_users)
    per_user = 1 + rng.multinomial(n_interactions - n_users, activity / activity.sum())
    user = np.repeat(np.arange(n_users), per_user)
    cluster_of_event = rng.integers(0, n_clusters, n_events)
    by_cluster = np.argsort(cluster_of_event, kind="stable")
    starts = np.searchsorted(cluster_of_event[by_cluster], np.arange(n_clusters + 1))
    liked = rng.integers(0, n_clusters, (n_users, 3))
    n_liked = rng.integers(2, 4, n_users)
    cluster = liked[user, (rng.random(len(user)) * n_liked[user]).astype(np.int64)]
    size = starts[cluster + 1] - starts[cluster]
    # Zipf-like within a cluster: low ranks (the cluster's hits) are drawn far more often.
    within = np.minimum((size * rng.random(len(user)) ** 2.5).astype(np.int64), size - 1)
    event = by_cluster[starts[cluster] + within]
    noise = rng.random(len(user)) < 0.1
    event[noise] = (rng.zipf(1.4, int(noise.sum())) - 1) % n_events
    kind = rng.choice(
        [TYPE_VIEW, TYPE_SAVE, TYPE_BOOKING, TYPE_BOOKING_CANCELLED, TYPE_RATING, TYPE_DISMISS],
        size=len(user),
        p=[0.60, 0.15, 0.12, 0.01, 0.10, 0.02],
    )
    value = np.where(kind == TYPE_RATING, rng.integers(3, 6, len(user)), 1)
    aux = np.where(np.isin(kind, (TYPE_BOOKING, TYPE_BOOKING_CANCELLED)), 7, 0)
    time = NOW - rng.integers(0, 180 * DAY, len(user))
    order = np.lexsort((time, user))
    return {
        "user": user[order],
        "event": event[order],
        "kind": kind[order],
        "value": value[order],
        "aux": aux[order],
        "time": time[order],
        "cluster_of_event": cluster_of_event,
    }


def _event_document(event_id: str, index: int, cluster: int, rng: np.random.Generator) -> bytes:
    starts = datetime.fromtimestamp(NOW, UTC) + timedelta(days=int(rng.integers(-60, 120)))
    return json.dumps(
        {
            "schema_version": 1,
            "event_id": event_id,
            "title": f"Event {index}",
            "category": CATEGORIES[cluster % len(CATEGORIES)],
            "tags": [f"scene-{cluster}", f"tag-{cluster % 17}"],
            "city": CITIES[cluster % len(CITIES)],
            "price": {"amount": int(rng.integers(0, 20)) * 500, "currency": "LKR"},
            "starts_at": starts.isoformat(),
            "status": "scheduled",
        }
    ).encode()


def load_into_redis(store: Store, settings: Settings, data: dict[str, np.ndarray]) -> None:
    """Id maps, rows and catalog exactly as the consumer stores them, in bulk."""
    topic = settings.topic_interactions
    n_users = int(data["user"].max()) + 1
    n_events = len(data["cluster_of_event"])
    user_ids = [f"u-{i:07d}" for i in range(n_users)]
    event_ids = [f"ev-{i:06d}" for i in range(n_events)]
    keys = store.keys
    partition_of = np.array([zlib.crc32(u.encode()) % PARTITIONS for u in user_ids])
    pipe = store.client.pipeline(transaction=False)
    for start in range(0, n_users, 5000):
        for user_index in range(start, min(start + 5000, n_users)):
            user_id = user_ids[user_index]
            pipe.hset(keys.owner(user_id), user_id, int(partition_of[user_index]))
    for shard in range(OWNER_SHARDS):
        pipe.sadd(keys.user_partitions(shard), *range(PARTITIONS))
    # Every partition indexes every event in the same order: local index = global index.
    for partition in range(PARTITIONS):
        for start in range(0, n_events, 5000):
            chunk = event_ids[start : start + 5000]
            pipe.rpush(keys.event_ids(topic, partition), *chunk)
            pipe.hset(
                keys.event_index(topic, partition),
                mapping={e: start + i for i, e in enumerate(chunk)},
            )
    pipe.execute()

    records = np.empty(len(data["user"]), dtype=RECORD_DTYPE)
    records["event"] = data["event"]
    records["time"] = data["time"]
    records["type"] = data["kind"]
    records["value"] = data["value"]
    records["aux"] = data["aux"]
    payload = records.tobytes()
    bounds = np.searchsorted(data["user"], np.arange(n_users + 1)) * RECORD_DTYPE.itemsize
    pipe = store.client.pipeline(transaction=False)
    for user in range(n_users):
        partition = int(partition_of[user])
        row = payload[bounds[user] : bounds[user + 1]]
        pipe.set(keys.row(topic, partition, user_ids[user]), row)
        pipe.rpush(keys.row_users(topic, partition), user_ids[user])
        if user % 5000 == 4999:
            pipe.execute()
    pipe.execute()

    rng = np.random.default_rng(1)
    changes = [
        (event_id, _event_document(event_id, i, int(data["cluster_of_event"][i]), rng))
        for i, event_id in enumerate(event_ids)
    ]
    offset = 0
    for start in range(0, len(changes), 2000):
        batch = changes[start : start + 2000]
        store.apply_entities("events", settings.topic_events, 0, offset, offset + len(batch), batch)
        offset += len(batch)


def implicit_als_seconds(confidence: Any) -> float:
    from implicit.als import AlternatingLeastSquares

    # implicit's own advice: one BLAS thread, its own threads over users.
    with threadpool_limits(limits=1, user_api="blas"):
        als = AlternatingLeastSquares(factors=64, iterations=15, random_state=0)
        started = time.perf_counter()
        als.fit(confidence, show_progress=False)
        return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=5_000_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--skip-implicit", action="store_true", help="for quick runs")
    parser.add_argument(
        "--redis-port", type=int, default=39379, help="the benchmark's own Redis server"
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)

    local = LocalServices(
        Settings(
            state_dir=REPO / ".local" / "bench-train",
            cache_dir=REPO / ".cache",
            # Set explicitly, so only the Redis server is started: training needs no broker.
            kafka_bootstrap_servers="127.0.0.1:39092",
            local_redis_port=args.redis_port,
        )
    )
    local.up()
    settings = Settings(
        kafka_bootstrap_servers="127.0.0.1:39092",
        redis_url=local.redis_url,
        key_prefix=f"bench-train-{int(time.time())}",
    )
    store = Store(connect(settings.redis_url), settings.key_prefix)
    try:
        started = time.perf_counter()
        data = planted_interactions(args.users, args.events, args.interactions)
        load_into_redis(store, settings, data)
        print(f"generated and loaded in {time.perf_counter() - started:.1f} s", file=sys.stderr)
        del data

        started = time.perf_counter()
        log = store.snapshot(settings.topic_interactions).log
        snapshot_seconds = time.perf_counter() - started

        outcome = Trainer(settings, store).cycle("benchmark")
        if outcome.outcome != "published":
            raise SystemExit(f"the cycle did not publish: {outcome}")
        metadata = load_version(store).metadata
        print(json.dumps({"version": metadata["metrics"], **metadata["timings"]}), file=sys.stderr)

        confidence = aggregate(log).confidence
        started = time.perf_counter()
        PureSVD(n_factors=64).fit(confidence)
        fit_seconds = time.perf_counter() - started
        als_seconds = float("nan") if args.skip_implicit else implicit_als_seconds(confidence)
        peak_rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result = {
            "interactions": len(log),
            "users": log.n_users,
            "events": log.n_events,
            "snapshot_seconds": round(snapshot_seconds, 3),
            "snapshot_rate": round(len(log) / snapshot_seconds),
            "fit_seconds_k64": round(fit_seconds, 3),
            "refit_total_seconds": round(outcome.seconds, 3),
            "peak_rss_mb": round(peak_rss_mb, 1),
            "implicit_als_seconds": round(als_seconds, 3),
            "ratio_to_implicit": round(fit_seconds / als_seconds, 4),
            "guide_dense_bytes": log.n_users * log.n_events * 8,
        }
        print(json.dumps(result))
    finally:
        keys = list(store.client.scan_iter(match=f"{settings.key_prefix}:*", count=5000))
        for start in range(0, len(keys), 5000):
            store.client.delete(*keys[start : start + 5000])
        store.client.close()
        local.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
