"""Serving benchmark: `/recommendations` against `/health` and the original guide's method.

Loads 50,000 upcoming events, 200,000 users with rows (10-30 records each) and a 64-factor
model version with the hybrid's blend (learned as the trainer does, on a validation cut a
week before the data's end) and TF-IDF into a Redis of its own, through the store
(catalog via ``apply_entities``, id maps, rows via ``apply_interactions``, the version
via ``write_version`` and ``activate_version``), starts `eventrec serve` as a separate
process, then measures with wrk (16 connections, 2 threads, 30 s each, user ids drawn at
random per request):

- rec: ``GET /recommendations?user_id=...&limit=10``;
- health: ``GET /health`` on the same server (the HTTP stack's own ceiling);
- guide: the guide's ``get_recommendations`` (cosine of the user vector against every
  event vector, a Python loop building a dict per event, a full sort) over the same model,
  as a small FastAPI app of this file under uvicorn with the same number of workers.

Every response is an impression: serving's background producer sends it to the
``impressions`` topic of a local broker. After serving stops (and flushes), the topic's
new messages are counted against the requests wrk completed (``impressions_reached``,
target at least 0.999), then applied through the consumer's attribution step into Redis,
where the memory of the day tables of impression records is measured
(``attribution_bytes_per_impression``: ``MEMORY USAGE`` of every key of the tables, with
``impressions_per_user`` beside it).

Beside each serving pass: the CPU time per request of serving's workers (utime + stime
from ``/proc``), of Redis (``INFO cpu``) and of the broker, and the load average, since the
machine may be shared. ``--skip-guide`` leaves out the guide's method.

Prints one JSON line. Usage: python benchmarks/serve.py [--workers 2] [--seconds 30]
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.evaluation.hybrid import AtCut
from eventrec.evaluation.time_protocol import ServedEventrec, TimeContext, documents_at
from eventrec.model.content_map import fit_content_map
from eventrec.model.hybrid import blend_metadata, fit_blend
from eventrec.model.recommender import EventrecModel
from eventrec.model.records import (
    RECORD_DTYPE,
    TYPE_BOOKING,
    TYPE_DISMISS,
    TYPE_RATING,
    TYPE_SAVE,
    TYPE_VIEW,
)
from eventrec.model.timecut import time_cut
from eventrec.schemas import Event
from eventrec.store.store import NO_HASH, InteractionBatch, Store, connect
from eventrec.store.versions import activate_version, write_trending, write_version
from eventrec.topics import create_topics
from eventrec.trainer.fit import (
    event_dates,
    fit_text,
    trending_scores,
    version_arrays,
)

REPO = Path(__file__).resolve().parents[1]
PARTITIONS = 6
CATEGORIES = ("music", "theatre", "sports", "comedy", "food", "art", "workshop", "festival")
CITIES = ("Colombo", "Kandy", "Galle", "Jaffna", "Negombo", "Matara")
DAY = 86_400
# Another checkout's benchmark may run beside this one: BENCH_PORT_OFFSET moves every port.
PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "0"))
REDIS_PORT = 37379 + PORT_OFFSET
SERVE_PORT = 37800 + PORT_OFFSET
GUIDE_PORT = 37801 + PORT_OFFSET
PREFIX = "bench-serve"
TOPICS = {
    "topic_interactions": "bench-serve.interactions",
    "topic_events": "bench-serve.events",
    "topic_users": "bench-serve.users",
    "topic_dlq": "bench-serve.dlq",
    "topic_impressions": "bench-serve.impressions",
}
KAFKA_PORT = 37092 + PORT_OFFSET
KAFKA_CONTROLLER_PORT = 37093 + PORT_OFFSET
USERS_PER_BATCH = 4000

WRK_SCRIPT = """
local template = os.getenv("BENCH_PATH")
local n_users = tonumber(os.getenv("BENCH_USERS"))
local counter = 0

function init(args)
  counter = counter + 1
  math.randomseed(os.time() * 1000 + counter + math.floor(os.clock() * 1e6))
end

function request()
  local path = template
  if string.find(template, "%%") then
    path = string.format(template, math.random(0, n_users - 1))
  end
  return wrk.format("GET", path)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "non2xx": %d, '
      .. '"socket_errors": %d}\\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    errors.status, errors.connect + errors.read + errors.write + errors.timeout))
end
"""


def log(message: str) -> None:
    print(f"[serve-bench] {message}", file=sys.stderr, flush=True)


def user_id(index: int) -> str:
    return f"u-{index:06d}"


# -- data -----------------------------------------------------------------------------


def planted_rows(
    n_users: int, n_events: int, now: int, seed: int = 0, n_clusters: int = 200
) -> dict[str, np.ndarray]:
    """10-30 records per user, mostly from 2-3 liked clusters of events, sorted by user."""
    rng = np.random.default_rng(seed)
    per_user = rng.integers(10, 31, n_users)
    user = np.repeat(np.arange(n_users), per_user)
    cluster_of_event = rng.integers(0, n_clusters, n_events)
    by_cluster = np.argsort(cluster_of_event, kind="stable")
    starts = np.searchsorted(cluster_of_event[by_cluster], np.arange(n_clusters + 1))
    liked = rng.integers(0, n_clusters, (n_users, 3))
    n_liked = rng.integers(2, 4, n_users)
    cluster = liked[user, (rng.random(len(user)) * n_liked[user]).astype(np.int64)]
    size = starts[cluster + 1] - starts[cluster]
    within = np.minimum((size * rng.random(len(user)) ** 2.5).astype(np.int64), size - 1)
    event = by_cluster[starts[cluster] + within]
    noise = rng.random(len(user)) < 0.1
    event[noise] = (rng.zipf(1.4, int(noise.sum())) - 1) % n_events
    kind = rng.choice(
        [TYPE_VIEW, TYPE_SAVE, TYPE_BOOKING, TYPE_RATING, TYPE_DISMISS],
        size=len(user),
        p=[0.64, 0.14, 0.10, 0.10, 0.02],
    )
    value = np.where(kind == TYPE_RATING, rng.integers(3, 6, len(user)), 1)
    aux = np.where(kind == TYPE_BOOKING, 7, 0)
    moment = now - rng.integers(60, 90 * DAY, len(user))
    order = np.lexsort((moment, user))
    return {
        "user": user[order],
        "event": event[order],
        "kind": kind[order],
        "value": value[order],
        "aux": aux[order],
        "time": moment[order],
        "cluster_of_event": cluster_of_event,
    }


def event_document(event_id: str, index: int, cluster: int, rng: np.random.Generator) -> bytes:
    """A valid ``schemas.Event`` JSON of an upcoming, scheduled event."""
    starts = datetime.now(UTC) + timedelta(days=1 + float(rng.uniform(0, 120)))
    event = Event(
        schema_version=1,
        event_id=event_id,
        title=f"Event {index}",
        category=CATEGORIES[cluster % len(CATEGORIES)],
        tags=[f"scene-{cluster}", f"tag-{cluster % 17}"],
        venue=f"Venue {cluster}",
        city=CITIES[cluster % len(CITIES)],
        price={"amount": int(rng.integers(0, 20)) * 500, "currency": "LKR"},
        starts_at=starts.replace(microsecond=0),
    )
    return event.model_dump_json().encode()


def load_catalog(store: Store, settings: Settings, event_ids: list[str], clusters: Any) -> None:
    rng = np.random.default_rng(1)
    offsets = [0] * PARTITIONS
    chunk: list[list[tuple[str, bytes | None]]] = [[] for _ in range(PARTITIONS)]
    for index, event_id in enumerate(event_ids):
        partition = index % PARTITIONS
        document = event_document(event_id, index, int(clusters[index]), rng)
        chunk[partition].append((event_id, document))
        if len(chunk[partition]) == 2000 or index == len(event_ids) - 1:
            for p in range(PARTITIONS):
                if chunk[p]:
                    store.apply_entities(
                        "events",
                        settings.topic_events,
                        p,
                        offsets[p],
                        offsets[p] + len(chunk[p]),
                        chunk[p],
                    )
                    offsets[p] += len(chunk[p])
                    chunk[p] = []


def load_rows(store: Store, settings: Settings, data: dict[str, np.ndarray]) -> None:
    """Id maps, then every user's records as consumer batches, per partition in chunks."""
    topic = settings.topic_interactions
    n_users = int(data["user"].max()) + 1
    n_events = len(data["cluster_of_event"])
    event_ids = [f"ev-{i:06d}" for i in range(n_events)]
    records = np.empty(len(data["user"]), dtype=RECORD_DTYPE)
    records["event"] = data["event"]
    records["time"] = data["time"]
    records["type"] = data["kind"]
    records["value"] = data["value"]
    records["aux"] = data["aux"]
    bounds = np.searchsorted(data["user"], np.arange(n_users + 1))
    for partition in range(PARTITIONS):
        members = np.arange(partition, n_users, PARTITIONS)
        offset = 0
        for start in range(0, len(members), USERS_PER_BATCH):
            chunk = members[start : start + USERS_PER_BATCH]
            names = [user_id(int(u)) for u in chunk]
            store.claim_owners(names, partition)
            rows = np.concatenate([records[bounds[m] : bounds[m + 1]] for m in chunk.tolist()])
            # The step names events by their place in the batch's list (1-based).
            named, place = np.unique(rows["event"], return_inverse=True)
            rows["event"] = place + 1
            batch = InteractionBatch(topic, partition, offset, 0)
            batch.event_ids = [event_ids[int(e)] for e in named]
            owners = [n for m, n in zip(chunk.tolist(), names, strict=True)
                      for _ in range(bounds[m + 1] - bounds[m])]  # fmt: skip
            batch.add_records(owners, rows.tobytes(), [NO_HASH] * len(rows))
            batch.next_offset = offset + len(batch.slots)
            store.apply_interactions(batch, time.time())
            offset = batch.next_offset


def fit_blend_as_trainer(
    log_: Any, parsed: list[dict[str, Any] | None]
) -> tuple[Any, dict[str, Any]]:
    """The hybrid's blend as the trainer learns it: the 64-factor configuration fitted
    before a validation cut a week before the data's end, pairs of the cut's users."""
    dates = event_dates(parsed)
    end = float(log_.records["time"].max())
    cut = time_cut(log_, end - 7 * DAY, 7.0, dates=dates)
    context = TimeContext(
        cut=cut,
        raw_rating=cut.train.records["value"].astype(np.float64),
        documents=documents_at(parsed, dates, cut),
        profiles=[],
        dates=dates,
        horizon_days=7.0,
        relevant_min_rating=4.0,
    )
    estimator = EventrecModel(n_factors=64, random_state=0)
    base = ServedEventrec(random_state=0, estimator=estimator).fit(context)
    at = AtCut.of(base, context)
    users = cut.users[:2000]
    blend = fit_blend(
        at.features,
        users,
        cut.relevant[: len(users)],
        np.flatnonzero(cut.candidates),
        cut.exclude,
        0,
    )
    return blend, {"blend_users": len(users), "candidates": int(cut.candidates.sum())}


def publish_model(store: Store, settings: Settings) -> str:
    """Fit a 64-factor model on the stored rows (no search), learn the hybrid's blend as
    the trainer does, and make the version current."""
    snapshot = store.snapshot(settings.topic_interactions)
    log_, event_ids = snapshot.log, snapshot.event_ids
    documents = store.entity_documents("events", settings.topic_events)
    parsed = [json.loads(documents[e]) if e in documents else None for e in event_ids]
    started = time.perf_counter()
    blend, blend_info = fit_blend_as_trainer(log_, parsed)
    log(
        f"blend learned in {time.perf_counter() - started:.1f} s: "
        + ", ".join(f"{n} {w:+.3f}" for n, w in zip(blend.features, blend.weights_, strict=True))
    )
    text = fit_text(parsed)
    model = EventrecModel(n_factors=64, random_state=0).fit(log_)
    featurizer, content_map, content_info = fit_content_map(
        [documents.get(event_id) for event_id in event_ids],
        model.item_factors_,
        model.popularity_,
    )
    trending = trending_scores(log_)
    metadata = {
        "trained_at": datetime.now(UTC).isoformat(),
        "params": model.params_,
        "data": {"users": log_.n_users, "events": log_.n_events, "interactions": len(log_)},
        "gated": False,
        "gate": "benchmark data: published without the gate",
        "model": {"now": float(model.now_), "n_factors": int(model.n_factors_)},
        "content": {
            "featurizer": featurizer.to_dict(),
            "alpha": float(content_map.alpha),
            **content_info,
        },
        "hybrid": {
            "blend": blend_metadata(blend),
            "text": {"min_df": text.min_df, "terms": len(text.vocabulary_)},
            "benchmark": blend_info,
        },
    }
    version = write_version(
        store, version_arrays(model, content_map, trending, event_ids, text), metadata
    )
    write_trending(store, event_ids, trending, {"computed_at": time.time()})
    activate_version(store, version)
    return version


# -- the guide's method, as a server of its own -----------------------------------------


def guide_app() -> Any:
    """The original guide's route and ``get_recommendations`` over this run's model.

    Like the guide, every user's vector and the user x event matrix are held in memory
    (here: the fold-in of each user's stored row under the current version, the vectors
    serving computes per request), and each request scores every event by cosine, loops
    in Python building one dict per event, and sorts them all.
    """
    import scipy.sparse as sp
    from fastapi import FastAPI, Query
    from pydantic import BaseModel
    from sklearn.metrics.pairwise import cosine_similarity

    from eventrec.model.aggregate import aggregate
    from eventrec.store.versions import load_version

    settings = Settings()
    store = Store(connect(settings.redis_url), settings.key_prefix)
    loaded = load_version(store)
    snapshot = store.snapshot(settings.topic_interactions)
    confidence = aggregate(snapshot.log, loaded.model.weights_, loaded.model.now_).confidence
    # The snapshot's dense event order is its own: select the model's events by id.
    column = {event_id: i for i, event_id in enumerate(snapshot.event_ids)}
    confidence = sp.csr_matrix(confidence, dtype=np.float32)[
        :, [column[event_id] for event_id in loaded.event_ids]
    ]
    scaled = sp.csr_matrix(confidence.multiply(loaded.column_scale[None, :]), dtype=np.float32)
    user_features = np.asarray(scaled @ loaded.item_factors, dtype=np.float32)
    event_features = loaded.item_factors
    columns = loaded.event_ids
    index = {name: i for i, name in enumerate(snapshot.user_ids)}
    store.client.close()

    def get_recommendations(user: str, n_recommendations: int = 10) -> list[dict[str, Any]]:
        if user not in index:
            return []
        user_idx = index[user]
        user_vector = user_features[user_idx]
        similarities = cosine_similarity([user_vector], event_features)[0]
        viewed_events = confidence[user_idx].nonzero()[1]
        recommendations = []
        for event_idx, similarity in enumerate(similarities):
            if event_idx not in viewed_events:
                recommendations.append({"event_id": columns[event_idx], "score": float(similarity)})
        recommendations.sort(key=lambda x: x["score"], reverse=True)
        return recommendations[:n_recommendations]

    class Recommendation(BaseModel):
        event_id: str
        score: float

    app = FastAPI(title="the guide's recommendations")

    @app.get("/recommendations", response_model=list[Recommendation])
    async def recommendations(
        user_id: str, limit: int = Query(10, ge=1, le=50)
    ) -> list[dict[str, Any]]:
        return get_recommendations(user_id, n_recommendations=limit)

    @app.get("/ready")
    async def ready() -> dict[str, bool]:
        return {"ready": True}

    return app


def run_guide(port: int, workers: int) -> None:
    import uvicorn

    sys.path.insert(0, str(REPO))
    uvicorn.run(
        "benchmarks.serve:guide_app",
        factory=True,
        host="127.0.0.1",
        port=port,
        workers=workers,
        log_level="warning",
        access_log=False,
    )


# -- processes and load -----------------------------------------------------------------


def service_env(settings: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTREC_")}
    for name in ("redis_url", "key_prefix", "kafka_bootstrap_servers", *TOPICS):
        env[f"EVENTREC_{name.upper()}"] = str(getattr(settings, name))
    env["EVENTREC_LOG_LEVEL"] = "WARNING"
    env["PYTHONPATH"] = str(REPO)
    return env


def wait_ready(port: int, process: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server on port {port} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/ready", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.5)
    raise RuntimeError(f"the server on port {port} was not ready within {timeout:.0f} s")


def stop(process: subprocess.Popen[bytes] | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (serving's workers), found by their parent ids in /proc."""
    parent_of: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent_of[int(stat.parent.name)] = int(fields[1])
    found, frontier = [], [pid]
    while frontier:
        children = [child for child, parent in parent_of.items() if parent in frontier]
        found += children
        frontier = children
    return found


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of ``pids`` (processes that exited count as 0)."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / ticks


def redis_cpu_seconds(store: Store) -> float:
    info = store.client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def load_average() -> float:
    return float(Path("/proc/loadavg").read_text().split()[0])


def wrk(
    port: int,
    path: str,
    seconds: int,
    connections: int,
    users: int,
    script: Path,
    server: subprocess.Popen[bytes] | None = None,
    store: Store | None = None,
    broker: int | None = None,
) -> dict[str, float]:
    """wrk's summary; with ``server``, its workers' CPU time per request (and Redis's, and
    the broker's, which receives the impressions)."""
    env = {**os.environ, "BENCH_PATH": path, "BENCH_USERS": str(users)}
    workers = descendants(server.pid) if server is not None else []
    cpu_before = cpu_seconds(workers)
    broker_before = cpu_seconds([broker]) if broker is not None else 0.0
    redis_before = redis_cpu_seconds(store) if store is not None else 0.0
    result = subprocess.run(
        [
            "wrk",
            "-t2",
            f"-c{connections}",
            f"-d{seconds}s",
            "--timeout",
            "10s",
            "-s",
            str(script),
            f"http://127.0.0.1:{port}",
        ],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    summary: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    if summary["non2xx"] or summary["socket_errors"]:
        raise RuntimeError(f"wrk on {path}: errors {summary}")
    summary["rps"] = summary["requests"] / (summary["duration_us"] / 1e6)
    summary["load_average"] = load_average()
    if workers:
        cpu = cpu_seconds(workers) - cpu_before
        summary["worker_cpu_ms"] = 1000 * cpu / summary["requests"]
    if store is not None:
        redis_cpu = redis_cpu_seconds(store) - redis_before
        summary["redis_cpu_ms"] = 1000 * redis_cpu / summary["requests"]
    if broker is not None:
        broker_cpu = cpu_seconds([broker]) - broker_before
        summary["broker_cpu_ms"] = 1000 * broker_cpu / summary["requests"]
    log(
        f"{path.split('?')[0]} on :{port}: {summary['rps']:,.0f} req/s, "
        f"p50 {summary['p50_us'] / 1000:.1f} ms, p99 {summary['p99_us'] / 1000:.1f} ms, "
        f"worker CPU {summary.get('worker_cpu_ms', float('nan')):.3f} ms/request, "
        f"load average {summary['load_average']:.2f}"
    )
    return summary


def impression_offsets(settings: Settings) -> dict[Any, int]:
    """End offset of each partition of the impressions topic."""
    from kafka import KafkaConsumer, TopicPartition

    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers)
    try:
        partitions = consumer.partitions_for_topic(settings.topic_impressions) or set()
        tps = [TopicPartition(settings.topic_impressions, p) for p in sorted(partitions)]
        return {tp: int(offset) for tp, offset in consumer.end_offsets(tps).items()}
    finally:
        consumer.close()


def attribute_impressions(
    settings: Settings, start: dict[Any, int], end: dict[Any, int]
) -> dict[str, float]:
    """Apply the new impressions as the consumer does; the records' memory per impression."""
    from kafka import KafkaConsumer

    from eventrec.consumer.attribution import prepare_attribution
    from eventrec.store.attribution import AttributionStore

    client = connect(settings.redis_url)
    attribution = AttributionStore(client, settings.key_prefix)
    consumer = KafkaConsumer(bootstrap_servers=settings.bootstrap_servers, max_poll_records=5000)
    users: dict[int, set[str]] = {}
    applied = 0
    try:
        consumer.assign(list(end))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        position = dict(start)
        while any(position[tp] < end[tp] for tp in end):
            for tp, messages in consumer.poll(timeout_ms=1000).items():
                messages = [m for m in messages if m.offset < end[tp]]
                if not messages:
                    continue
                prepared = prepare_attribution(tp.topic, tp.partition, 0, messages)
                batch = prepared.batch
                # Offsets of a fresh key prefix: each partition's step starts from 0.
                batch.expected_offset = position[tp] - start[tp]
                batch.next_offset = batch.expected_offset + len(messages)
                result = attribution.apply(batch, time.time())
                applied += result.impressions
                users.setdefault(tp.partition, set()).update(u for _, u, _ in batch.items)
                position[tp] = messages[-1].offset + 1
    finally:
        consumer.close()
    memory = attribution.table_bytes(settings.topic_impressions)
    n_users = sum(len(members) for members in users.values())
    client.close()
    return {
        "impressions_applied": applied,
        "impressions_per_user": round(applied / max(n_users, 1), 2),
        "attribution_bytes_per_impression": round(memory / max(applied, 1), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=50_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers of each server")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument(
        "--hybrid",
        choices=("on", "off"),
        default="on",
        help="serve by the learned blend (on) or by the collaborative scores alone "
        "(EVENTREC_SERVING_HYBRID=false)",
    )
    parser.add_argument(
        "--skip-guide", action="store_true", help="leave out the guide's method (no speedup)"
    )
    parser.add_argument("--guide-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.guide_server:
        run_guide(args.guide_server, args.workers)
        return 0

    local = LocalServices(
        Settings(
            state_dir=REPO / ".local" / "bench-serve",
            cache_dir=REPO / ".cache",
            # The broker receives serving's impressions.
            local_kafka_port=KAFKA_PORT,
            local_kafka_controller_port=KAFKA_CONTROLLER_PORT,
            local_redis_port=REDIS_PORT,
        )
    )
    local.up()
    settings = Settings(
        kafka_bootstrap_servers=local.kafka_address,
        redis_url=local.redis_url,
        key_prefix=PREFIX,
        **TOPICS,  # type: ignore[arg-type]
    )
    create_topics(settings)
    store = Store(connect(settings.redis_url), settings.key_prefix)
    server: subprocess.Popen[bytes] | None = None
    guide: subprocess.Popen[bytes] | None = None
    try:
        store.client.flushdb()
        started = time.perf_counter()
        data = planted_rows(args.users, args.events, int(time.time()))
        event_ids = [f"ev-{i:06d}" for i in range(args.events)]
        load_catalog(store, settings, event_ids, data["cluster_of_event"])
        log(f"catalog of {args.events} events in {time.perf_counter() - started:.1f} s")
        load_rows(store, settings, data)
        log(
            f"{len(data['user'])} records of {args.users} users "
            f"in {time.perf_counter() - started:.1f} s"
        )
        del data
        version = publish_model(store, settings)
        log(f"model version {version} current after {time.perf_counter() - started:.1f} s")

        env = service_env(settings)
        env["EVENTREC_SERVING_HYBRID"] = "true" if args.hybrid == "on" else "false"
        logs = REPO / ".local" / "bench-serve"
        with tempfile.TemporaryDirectory() as scratch:
            script = Path(scratch) / "users.lua"
            script.write_text(WRK_SCRIPT)
            rec_path = "/recommendations?user_id=u-%06d&limit=10"
            with (logs / "serve.log").open("wb") as out:
                server = subprocess.Popen(
                    [sys.executable, "-m", "eventrec.cli", "serve", "--port", str(SERVE_PORT),
                     "--workers", str(args.workers)],
                    env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                )  # fmt: skip
            wait_ready(SERVE_PORT, server)
            log(f"eventrec serve ready with {args.workers} workers")
            offsets_before = impression_offsets(settings)
            broker = int((local.kafka_dir / "pid").read_text().split()[0])
            measured = functools.partial(wrk, SERVE_PORT, server=server, store=store, broker=broker)
            warm = measured(rec_path, 5, args.connections, args.users, script)
            rec = measured(rec_path, args.seconds, args.connections, args.users, script)
            health = measured("/health", args.seconds, args.connections, args.users, script)
            stop(server)  # SIGTERM: each worker flushes its queued impressions first
            server = None
            offsets_after = impression_offsets(settings)
            requested = int(warm["requests"] + rec["requests"])
            on_topic = sum(offsets_after[tp] - offsets_before.get(tp, 0) for tp in offsets_after)
            log(f"{on_topic} impressions on the topic for {requested} requests")
            attributed = attribute_impressions(settings, offsets_before, offsets_after)
            log(f"serving: {json.dumps({'warm': warm, 'rec': rec, 'health': health})}")

            baseline = None
            if not args.skip_guide:
                with (logs / "guide.log").open("wb") as out:
                    guide = subprocess.Popen(
                        [sys.executable, str(Path(__file__).resolve()), "--guide-server",
                         str(GUIDE_PORT), "--workers", str(args.workers)],
                        env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO,
                    )  # fmt: skip
                wait_ready(GUIDE_PORT, guide)
                log(f"guide server ready with {args.workers} workers")
                wrk(GUIDE_PORT, rec_path, 5, args.connections, args.users, script)  # warm-up
                baseline = wrk(
                    GUIDE_PORT, rec_path, args.seconds, args.connections, args.users, script
                )
        result = {
            "catalog_events": args.events,
            "hybrid": args.hybrid == "on",
            "users": args.users,
            "factors": 64,
            "connections": args.connections,
            "workers": args.workers,
            "rec_rps": round(rec["rps"], 1),
            "rec_p50_ms": round(rec["p50_us"] / 1000, 2),
            "rec_p99_ms": round(rec["p99_us"] / 1000, 2),
            "health_rps": round(health["rps"], 1),
            "ratio": round(rec["rps"] / health["rps"], 3),
            "warm_rps": round(warm["rps"], 1),
            "warm_p99_ms": round(warm["p99_us"] / 1000, 2),
            "rec_worker_cpu_ms": round(rec["worker_cpu_ms"], 3),
            "rec_redis_cpu_ms": round(rec["redis_cpu_ms"], 3),
            "rec_broker_cpu_ms": round(rec["broker_cpu_ms"], 3),
            "health_worker_cpu_ms": round(health["worker_cpu_ms"], 3),
            "load_average": [warm["load_average"], rec["load_average"], health["load_average"]],
            "guide_rps": None if baseline is None else round(baseline["rps"], 2),
            "speedup_vs_guide": None
            if baseline is None
            else round(rec["rps"] / baseline["rps"], 1),
            "impressions_requests": requested,
            "impressions_on_topic": on_topic,
            "impressions_dropped": max(requested - on_topic, 0),
            "impressions_reached": round(min(on_topic / max(requested, 1), 1.0), 5),
            **attributed,
        }
        print(json.dumps(result))
    finally:
        stop(server)
        stop(guide)
        try:
            store.client.flushdb()
            store.client.close()
        finally:
            local.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
