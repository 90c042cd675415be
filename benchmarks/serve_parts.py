"""Serving's per-request parts measured apart: CPU time of each, in one process.

`benchmarks/serve.py` measures the whole server; this measures the three costs a
recommendation gained in milestone 2, each against the same work without it, with a real
broker and a real Redis (local, ports of their own):

- impressions: ``record_impression`` for responses of 10 items at 1,000 a second (about
  one worker's share under the serving benchmark), through a started ``ImpressionSender``
  to the broker, until every one is acknowledged, for two lingers. ``process_time``
  counts every thread, so the background producer's CPU is included; the request path's
  own share (the calling thread's ``thread_time``) and the broker's CPU are beside it.
- metrics: ``RequestMetrics`` around a minimal ASGI app answering 200, against the bare
  app, in prometheus-client's multiprocess mode as ``eventrec serve`` runs it.
- rows: reading the rows of batches of 8 random users (10-30 records each, 6 partitions)
  as serving does, against the same rows read with their owners already known (the
  lower bound: one pipelined round trip, no owner lookup). Redis's own CPU per batch is
  given beside the worker's.

Prints one JSON line; figures are microseconds. Usage: python benchmarks/serve_parts.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

REPO = Path(__file__).resolve().parents[1]
PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "0"))
REDIS_PORT = 37479 + PORT_OFFSET
KAFKA_PORT = 37192 + PORT_OFFSET
KAFKA_CONTROLLER_PORT = 37193 + PORT_OFFSET
PREFIX = "bench-parts"
BATCH = 8


def log(message: str) -> None:
    print(f"[serve-parts] {message}", file=sys.stderr, flush=True)


def cpu_us(run: Callable[[], Any], n: int) -> tuple[float, Any]:
    """Process CPU time (every thread) per item of ``run()``, in microseconds."""
    started = time.process_time()
    result = run()
    return 1e6 * (time.process_time() - started) / n, result


def impressions(settings: Any, rate: int, seconds: float, broker: int) -> dict[str, float]:
    """Impressions offered at ``rate`` per second (as serving's traffic offers them, so the
    broker gets batches of a realistic size), for each linger; CPU per impression of this
    process (every thread) and of the broker."""
    from eventrec.serving import impressions as module
    from eventrec.serving.impressions import ImpressionSender
    from eventrec.serving.routes.recommendations import record_impression

    items = [{"event_id": f"ev-{i:06d}", "score": 0.5, "reason": None} for i in range(10)]
    n = int(rate * seconds)
    result: dict[str, float] = {}
    for linger in (0.02, 0.05):
        module.LINGER_SECONDS = linger
        # Room for every impression: a drop would be a figure of the queue, not of the cost.
        sender = ImpressionSender(settings.model_copy(update={"impressions_queue_size": n + 10}))
        sender.start()
        runtime = SimpleNamespace(impressions=sender)
        # Connected (the producer's first metadata fetch is not a per-request cost).
        record_impression(runtime, "warm", "u-warm", "v1", "personalised", items, None)  # type: ignore[arg-type]
        deadline = time.monotonic() + 60
        while sender.stats()["sent"] < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        request_path = 0.0
        broker_before = broker_cpu(broker)
        started_at = time.process_time()
        tick, per_tick = 0.01, max(1, int(rate * 0.01))
        next_tick = time.monotonic()
        for first in range(0, n, per_tick):
            started = time.thread_time()
            for i in range(first, min(first + per_tick, n)):
                record_impression(
                    runtime,  # type: ignore[arg-type]
                    f"{i:032x}",
                    f"u-{i % 200_000:06d}",
                    "v1",
                    "personalised",
                    items,
                    None,
                )
            request_path += time.thread_time() - started
            next_tick += tick
            time.sleep(max(0.0, next_tick - time.monotonic()))
        while sum(sender.stats()[k] for k in ("sent", "failed", "dropped")) < n + 1:
            time.sleep(0.001)
        total = time.process_time() - started_at
        broker_used = broker_cpu(broker) - broker_before
        stats = sender.stats()
        sender.stop()
        if stats["sent"] != n + 1 or stats["dropped"]:
            raise RuntimeError(f"impressions: {stats}")
        name = f"linger_{int(linger * 1000)}ms"
        result[f"impression_process_us_{name}"] = round(1e6 * total / n, 2)
        result[f"impression_broker_us_{name}"] = round(1e6 * broker_used / n, 2)
        result[f"impression_request_path_us_{name}"] = round(1e6 * request_path / n, 2)
    return result


def broker_cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def middleware(n: int) -> dict[str, float]:
    from eventrec.serving.metrics import RequestMetrics

    route = SimpleNamespace(path="/recommendations")

    async def app(scope: Any, receive: Any, send: Any) -> None:
        scope["route"] = route
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"{}"})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b""}

    async def send(message: Any) -> None:
        pass

    def calls(handler: Callable[..., Awaitable[None]]) -> Callable[[], None]:
        async def loop() -> None:
            for _ in range(n):
                await handler({"type": "http", "method": "GET", "path": "/"}, receive, send)

        return lambda: asyncio.run(loop())

    wrapped = RequestMetrics(app)
    bare, _ = cpu_us(calls(app), n)
    with_metrics, _ = cpu_us(calls(wrapped), n)
    return {"metrics_middleware_us": round(with_metrics - bare, 2)}


def rows(settings: Any, n_users: int, n_batches: int) -> dict[str, float]:
    sys.path.insert(0, str(REPO))
    from benchmarks.serve import load_rows, planted_rows, user_id
    from eventrec.serving import rows as serving_rows
    from eventrec.serving.events import EventSpace
    from eventrec.store.client import connect_async
    from eventrec.store.keys import Keys
    from eventrec.store.store import Store, connect

    store = Store(connect(settings.redis_url), settings.key_prefix)
    store.client.flushdb()
    load_rows(store, settings, planted_rows(n_users, 5_000, int(time.time())))
    topic, keys = settings.topic_interactions, Keys(settings.key_prefix)
    rng = random.Random(0)
    batches = [[user_id(rng.randrange(n_users)) for _ in range(BATCH)] for _ in range(n_batches)]

    def redis_cpu() -> float:
        info = store.client.info("cpu")
        return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])

    async def owners_known(redis: Any, user_ids: list[str], space: EventSpace) -> None:
        # The partition is the benchmark's own (user index mod 6): no owner lookup.
        pipe = redis.pipeline(transaction=False)
        for name in user_ids:
            partition = int(name[2:]) % 6
            pipe.get(keys.row(topic, partition, name))
            pipe.get(keys.offset(topic, partition))
            pipe.llen(keys.event_ids(topic, partition))
        await pipe.execute()

    readers: dict[str, Callable[[Any, list[str], EventSpace], Awaitable[Any]]] = {
        "owners_known": owners_known,
        "two_round_trips": lambda redis, user_ids, space: serving_rows.read_rows(
            redis, keys, topic, user_ids, space
        ),
    }
    one_trip = getattr(serving_rows, "OwnedRows", None)
    result: dict[str, float] = {}

    async def run(name: str, read: Callable[[Any, list[str], EventSpace], Awaitable[Any]]) -> None:
        redis = connect_async(settings.redis_url)
        space = EventSpace([])
        for user_ids in batches[:50]:  # event tables filled, connection made
            await read(redis, user_ids, space)
        cpu, wall, redis_before = time.process_time(), time.perf_counter(), redis_cpu()
        for user_ids in batches:
            await read(redis, user_ids, space)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        result[f"rows_{name}_cpu_us"] = round(1e6 * cpu / n_batches, 1)
        result[f"rows_{name}_redis_cpu_us"] = round(
            1e6 * (redis_cpu() - redis_before) / n_batches, 1
        )
        result[f"rows_{name}_wall_us"] = round(1e6 * wall / n_batches, 1)
        await redis.aclose()

    async def main() -> None:
        if one_trip is not None:
            redis = connect_async(settings.redis_url)
            reader = one_trip(redis, keys, topic)
            readers["one_round_trip"] = lambda _redis, user_ids, space: reader.read(user_ids, space)
        for name, read in readers.items():
            await run(name, read)

    asyncio.run(main())
    store.client.flushdb()
    store.client.close()
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--rate", type=int, default=1_000, help="impressions per second")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--requests", type=int, default=100_000)
    parser.add_argument("--users", type=int, default=20_000)
    parser.add_argument("--batches", type=int, default=5_000)
    parser.add_argument(
        "--parts", default="impressions,metrics,rows", help="which parts, comma-separated"
    )
    args = parser.parse_args()

    from eventrec.telemetry import use_multiprocess_dir

    use_multiprocess_dir()  # before prometheus_client is imported, as `eventrec serve` does
    from eventrec.config import Settings
    from eventrec.devstack import LocalServices
    from eventrec.topics import create_topics

    local = LocalServices(
        Settings(
            state_dir=REPO / ".local" / "bench-serve-parts",
            cache_dir=REPO / ".cache",
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
        topic_interactions="bench-parts.interactions",
        topic_impressions=f"bench-parts.impressions.{int(time.time())}",
    )
    try:
        create_topics(settings)
        result: dict[str, Any] = {"load_average_before": os.getloadavg()[0]}
        parts = args.parts.split(",")
        if "impressions" in parts:
            broker = int((local.kafka_dir / "pid").read_text().split()[0])
            result.update(impressions(settings, args.rate, args.seconds, broker))
            log(f"impressions {result}")
        if "metrics" in parts:
            result.update(middleware(args.requests))
            log(f"metrics {result}")
        if "rows" in parts:
            result.update(rows(settings, args.users, args.batches))
        result["load_average_after"] = os.getloadavg()[0]
        print(json.dumps(result))
    finally:
        local.down()
    return 0


if __name__ == "__main__":
    sys.exit(main())
