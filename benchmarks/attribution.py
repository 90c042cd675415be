"""Redis memory per impression of attribution's day tables, at the serving benchmark's density.

The serving benchmark at full size (``benchmarks/serve.py``) sends about 71,000
impressions for users drawn uniformly from 200,000 (about 1.2 impressions per user who
got one), ten events each, on six partitions. This applies the same traffic, without
serving, through the consumer's attribution step into a Redis server of its own, and
measures two ways what its records take:

- ``MEMORY USAGE`` of every key of the tables (buckets and their counts), summed;
- ``used_memory`` of ``INFO memory`` before and after (everything the step wrote,
  per-day counters and the keys' expiry entries included; after ``SCRIPT FLUSH``, which
  drops the Lua VM's uncollected garbage).

The baseline, in the same run and the same server: the layout before the day tables,
one string key per user holding that user's 44-byte records (``SET`` per impression).

    BENCH_PORT_OFFSET=40 .venv/bin/python benchmarks/attribution.py [--days 7]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from kafka.partitioner.default import murmur2

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.model.impressions import pack_impression
from eventrec.store.attribution import DAY, AttributionBatch, AttributionStore
from eventrec.store.keys import Keys
from eventrec.store.store import connect

REPO = Path(__file__).resolve().parents[1]
# Another checkout's benchmark may run beside this one: BENCH_PORT_OFFSET moves every port.
PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "0"))
REDIS_PORT = 37679 + PORT_OFFSET
TOPIC = "bench-attribution.impressions"
BATCH = 2000  # messages per partition per step, about what one poll hands the consumer


def log(message: str) -> None:
    print(f"[attribution-bench] {message}", file=sys.stderr, flush=True)


def used_memory(client: Any) -> int:
    # Let the server's cron give back the client's query buffer of the last large step.
    time.sleep(1.0)
    return int(client.info("memory")["used_memory"])


def traffic(
    n_impressions: int, n_users: int, n_events: int, shown: int, days: int, seed: int, now: float
) -> list[tuple[str, str, float, list[str]]]:
    """(user_id, request_id, shown_at, event ids) like serving's, users drawn uniformly."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_impressions):
        user = f"u-{rng.randrange(n_users):06d}"
        request = f"{rng.getrandbits(128):032x}"
        shown_at = now - rng.uniform(0, days * DAY - 1) if days > 1 else now - rng.uniform(0, 600)
        events = [f"e-{rng.randrange(n_events):06d}" for _ in range(shown)]
        out.append((user, request, shown_at, events))
    return out


def measure_tables(
    client: Any, prefix: str, impressions: list[tuple[str, str, float, list[str]]], partitions: int
) -> dict[str, float]:
    store = AttributionStore(client, prefix)
    by_partition: dict[int, list[tuple[str, str, bytes]]] = {}
    for user, request, shown_at, events in impressions:
        partition = (murmur2(user.encode()) & 0x7FFFFFFF) % partitions
        record = pack_impression(user, request, shown_at, 0, 0, events)
        by_partition.setdefault(partition, []).append(("i", user, record))
    before = used_memory(client)
    started = time.perf_counter()
    applied = 0
    for partition, items in sorted(by_partition.items()):
        for start in range(0, len(items), BATCH):
            chunk = items[start : start + BATCH]
            batch = AttributionBatch(TOPIC, partition, start, start + len(chunk), chunk)
            applied += store.apply(batch, time.time()).impressions
    elapsed = time.perf_counter() - started
    # The Lua VM keeps garbage of the steps until its next collection: not the data's.
    client.script_flush()
    delta = used_memory(client) - before
    keys = list(store.table_keys(TOPIC))
    table_bytes = store.table_bytes(TOPIC)
    encodings = {client.object("encoding", k).decode() for k in keys}
    return {
        "applied": applied,
        "tables_bytes_per_impression": round(table_bytes / applied, 1),
        "used_memory_bytes_per_impression": round(delta / applied, 1),
        "table_keys": len(keys),
        "encodings": sorted(encodings),  # type: ignore[dict-item]
        "impressions_per_second": round(applied / elapsed),
    }


def measure_keys_per_user(
    client: Any, prefix: str, impressions: list[tuple[str, str, float, list[str]]], partitions: int
) -> dict[str, float]:
    """The previous layout: one string per user, rewritten with SET on every impression."""
    keys = Keys(prefix)
    rows: dict[str, bytes] = {}
    before = used_memory(client)
    pipe = client.pipeline(transaction=False)
    for n, (user, request, shown_at, events) in enumerate(impressions, 1):
        partition = (murmur2(user.encode()) & 0x7FFFFFFF) % partitions
        key = keys.attribution_base(TOPIC, partition) + f"shown:{user}"
        rows[key] = rows.get(key, b"") + pack_impression(user, request, shown_at, 0, 0, events)
        pipe.set(key, rows[key], ex=8 * DAY)
        if n % 2000 == 0:
            pipe.execute()
    pipe.execute()
    delta = used_memory(client) - before
    usage = sum(int(client.memory_usage(k, samples=0) or 0) for k in rows)
    return {
        "keys_bytes_per_impression": round(usage / len(impressions), 1),
        "used_memory_bytes_per_impression": round(delta / len(impressions), 1),
        "keys": len(rows),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--impressions", type=int, default=71_000)
    parser.add_argument("--users", type=int, default=200_000)
    parser.add_argument("--events", type=int, default=50_000, help="catalogue size")
    parser.add_argument("--shown", type=int, default=10, help="events per response")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--days", type=int, default=1, help="spread the traffic over days")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()

    now = time.time()
    impressions = traffic(
        args.impressions, args.users, args.events, args.shown, args.days, args.seed, now
    )
    users = len({user for user, *_ in impressions})
    local = LocalServices(
        Settings(
            state_dir=REPO / ".local" / "bench-attribution",
            cache_dir=REPO / ".cache",
            local_redis_port=REDIS_PORT,
            # No broker here: only the Redis server is started.
            kafka_bootstrap_servers="127.0.0.1:1",
        )
    )
    local.up()
    client = connect(local.redis_url)
    try:
        client.flushall()
        tables = measure_tables(client, "bench-tables", impressions, args.partitions)
        log(f"day tables: {tables}")
        client.flushall()
        baseline = measure_keys_per_user(client, "bench-users", impressions, args.partitions)
        log(f"a key per user: {baseline}")
        client.flushall()
    finally:
        client.close()
        local.down()
    summary = {
        "impressions": args.impressions,
        "users_drawn_from": args.users,
        "users_with_an_impression": users,
        "impressions_per_user": round(args.impressions / users, 2),
        "shown": args.shown,
        "partitions": args.partitions,
        "days": args.days,
        **{f"tables_{k}" if not k.startswith("tables") else k: v for k, v in tables.items()},
        **{f"baseline_{k}": v for k, v in baseline.items()},
    }
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    sys.exit(main())
