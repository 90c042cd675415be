"""Ingestion benchmark: `eventrec consumer` against the client's ceiling and a naive consumer.

Pre-produces N synthetic interactions (realistic JSON, keyed by user, 6 partitions) to a
broker and Redis of its own, then measures in the same run:

- raw_client_rate: kafka-python consuming and JSON-decoding the topic, nothing else;
- consumer_rate: `eventrec consumer` from offset 0 until every interaction is in Redis;
- naive_rate: on the first 50,000, one Redis round trip per interaction and a Kafka
  commit per message.

With --redis-cluster the consumer runs against a local Redis Cluster (three masters,
three replicas) and, in the same run, against the single server: the JSON says
"cluster": true, the ratio of the two rates, and the Redis commands each master served
during the cluster run.

Prints one JSON line. Usage: python benchmarks/ingest.py [--interactions 1000000]
[--redis-cluster]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

import redis
from kafka import KafkaConsumer, TopicPartition

from eventrec.config import Settings
from eventrec.devstack import LocalRedisCluster, LocalServices
from eventrec.schemas import decode_interaction
from eventrec.store import Store, connect
from eventrec.store.keys import OWNER_SHARDS
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import generate
from eventrec.synth.publish import publish
from eventrec.topics import create_topics

REPO = Path(__file__).resolve().parents[1]
# Another checkout's benchmark may run beside this one: BENCH_PORT_OFFSET moves every port.
PORT_OFFSET = int(os.environ.get("BENCH_PORT_OFFSET", "0"))


def bench_settings(services: LocalServices, tag: str) -> Settings:
    return Settings(
        kafka_bootstrap_servers=services.kafka_address,
        redis_url=services.redis_url,
        key_prefix=f"bench-{tag}",
        consumer_group=f"bench-{tag}",
        topic_interactions=f"bench-{tag}.interactions",
        topic_events=f"bench-{tag}.events",
        topic_users=f"bench-{tag}.users",
        topic_dlq=f"bench-{tag}.dlq",
        topic_partitions=6,
    )


def raw_client_rate(settings: Settings, total: int) -> float:
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    topic = settings.topic_interactions
    partitions = [TopicPartition(topic, p) for p in range(settings.topic_partitions)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    seen = 0
    started = time.perf_counter()
    while seen < total:
        for batch in consumer.poll(timeout_ms=500, max_records=5000).values():
            for message in batch:
                json.loads(message.value)
            seen += len(batch)
    elapsed = time.perf_counter() - started
    consumer.close()
    return seen / elapsed


def consumer_rate(settings: Settings, total: int, processes: int) -> tuple[float, Settings]:
    """`eventrec consumer` (with ``processes`` group members) from offset 0 to the last."""
    tag = uuid.uuid4().hex[:6]
    settings = settings.model_copy(
        update={
            "key_prefix": f"{settings.key_prefix}-{tag}",
            "consumer_group": f"{settings.consumer_group}-{tag}",
            "consumer_processes": processes,
        }
    )
    env = {
        "PATH": "/usr/bin:/bin",
        **{f"EVENTREC_{k.upper()}": str(v) for k, v in settings.model_dump().items() if v},
    }
    store = Store(connect(settings.redis_url), settings.key_prefix)
    topic = settings.topic_interactions
    started = time.perf_counter()
    process = subprocess.Popen(
        [sys.executable, "-m", "eventrec.cli", "consumer"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        while True:
            offsets = store.stored_offsets(topic, range(settings.topic_partitions))
            if sum(o or 0 for o in offsets.values()) >= total:
                break
            if process.poll() is not None:
                raise RuntimeError(f"the consumer exited with {process.returncode}")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    finally:
        process.terminate()
        process.wait(timeout=60)
    return total / elapsed, settings


def naive_rate(settings: Settings, count: int) -> float:
    """One interaction per Redis round trip, one Kafka commit per message."""
    client = connect(settings.redis_url)
    consumer = KafkaConsumer(
        settings.topic_interactions,
        bootstrap_servers=settings.bootstrap_servers,
        group_id=f"{settings.consumer_group}-naive",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    seen = 0
    started = time.perf_counter()
    while seen < count:
        for tp, batch in consumer.poll(timeout_ms=500, max_records=500).items():
            for message in batch:
                interaction = decode_interaction(message.key, message.value)
                client.rpush(
                    f"naive-{settings.key_prefix}:{interaction.user_id}",
                    message.value or b"",
                )
                consumer.commit({tp: _offset(message.offset + 1)})
                seen += 1
                if seen >= count:
                    break
            if seen >= count:
                break
    elapsed = time.perf_counter() - started
    consumer.close()
    for key in client.scan_iter(match=f"naive-{settings.key_prefix}:*", count=5000):
        client.delete(key)
    return seen / elapsed


def _offset(offset: int) -> object:
    from kafka.structs import OffsetAndMetadata

    return OffsetAndMetadata(offset, "", -1)


def redis_bytes(settings: Settings, total: int) -> tuple[float, float]:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    keys = store.keys
    matrix_keys = [keys.owner_shard(shard) for shard in range(OWNER_SHARDS)]
    matrix_keys += [keys.user_partitions(shard) for shard in range(OWNER_SHARDS)]
    dedup_keys = []
    for partition in range(settings.topic_partitions):
        topic = settings.topic_interactions
        users = store.partition_users(topic, partition)
        matrix_keys.append(keys.row_users(topic, partition))
        matrix_keys.append(keys.event_index(topic, partition))
        matrix_keys.append(keys.event_ids(topic, partition))
        matrix_keys.extend(keys.row(topic, partition, u) for u in users)
        dedup_keys.extend(
            k.decode()
            for k in store.client.scan_iter(match=keys.dedup(topic, partition, 0)[:-1] + "*")
        )
    return store.memory_usage(matrix_keys) / total, store.memory_usage(dedup_keys) / total


# Commands of the cluster's own upkeep, not of eventrec's work.
UPKEEP_COMMANDS = {"replconf", "ping", "info", "cluster", "config", "command", "psync", "sync"}


def master_commands(cluster: LocalRedisCluster) -> dict[int, int]:
    """Commands each master has served so far (INFO commandstats), upkeep left out."""
    counts = {}
    for master in cluster.masters():
        node = redis.Redis(port=master.port)
        try:
            stats = node.info("commandstats")
        finally:
            node.close()
        counts[master.port] = sum(
            int(values["calls"])
            for name, values in stats.items()
            if name.removeprefix("cmdstat_").split("|")[0] not in UPKEEP_COMMANDS
        )
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--interactions", type=int, default=1_000_000)
    parser.add_argument("--users", type=int, default=50_000)
    parser.add_argument("--events", type=int, default=5_000)
    parser.add_argument("--naive", type=int, default=50_000, help="messages for the naive rate")
    parser.add_argument(
        "--consumer-processes", type=int, default=2, help="EVENTREC_CONSUMER_PROCESSES"
    )
    parser.add_argument(
        "--redis-cluster",
        action="store_true",
        help="measure the consumer on a local Redis Cluster and on the single server",
    )
    parser.add_argument("--keep-services", action="store_true")
    args = parser.parse_args()

    services = LocalServices(
        Settings(
            state_dir=REPO / ".local" / "bench-ingest",
            cache_dir=REPO / ".cache",
            local_kafka_port=18092 + PORT_OFFSET,
            local_kafka_controller_port=18093 + PORT_OFFSET,
            local_redis_port=16380 + PORT_OFFSET,
            local_redis_cluster_port=18000 + PORT_OFFSET,
        )
    )
    services.up()
    cluster = services.cluster
    if args.redis_cluster:
        cluster.up()
    try:
        settings = bench_settings(services, uuid.uuid4().hex[:8])
        create_topics(settings)
        platform = generate(
            SynthConfig(
                n_users=args.users,
                n_events=args.events,
                n_interactions=args.interactions,
                seed=1,
            )
        )
        total = len(platform.interactions)
        publish(platform, settings, progress=True)
        print(f"published {total} interactions", file=sys.stderr)

        raw = raw_client_rate(settings, total)
        print(f"raw client: {raw:,.0f}/s", file=sys.stderr)
        if args.redis_cluster:
            print(json.dumps(cluster_result(args, settings, cluster, total, raw)))
            return
        rate, measured = consumer_rate(settings, total, args.consumer_processes)
        print(f"eventrec consumer ({args.consumer_processes} processes): {rate:,.0f}/s",
              file=sys.stderr)  # fmt: skip
        single = rate if args.consumer_processes == 1 else consumer_rate(settings, total, 1)[0]
        print(f"eventrec consumer (1 process): {single:,.0f}/s", file=sys.stderr)
        naive = naive_rate(settings, min(args.naive, total))
        print(f"naive: {naive:,.0f}/s", file=sys.stderr)
        matrix_bytes, dedup_bytes = redis_bytes(measured, total)
        result = {
            "interactions": total,
            "raw_client_rate": round(raw),
            "consumer_rate": round(rate),
            "consumer_processes": args.consumer_processes,
            "consumer_rate_1_process": round(single),
            "naive_rate": round(naive),
            "ratio_to_raw": round(rate / raw, 3),
            "speedup_vs_naive": round(rate / naive, 1),
            "redis_bytes_per_interaction": round(matrix_bytes, 1),
            "dedup_bytes_per_interaction": round(dedup_bytes, 1),
        }
        print(json.dumps(result))
    finally:
        if not args.keep_services:
            services.down()  # the cluster too


def cluster_result(
    args: argparse.Namespace,
    settings: Settings,
    cluster: LocalRedisCluster,
    total: int,
    raw: float,
) -> dict[str, object]:
    """The consumer on the cluster, then on the single server, from the same topic."""
    on_cluster = settings.model_copy(update={"redis_url": cluster.url})
    before = master_commands(cluster)
    rate, measured = consumer_rate(on_cluster, total, args.consumer_processes)
    after = master_commands(cluster)
    print(f"eventrec consumer on the cluster: {rate:,.0f}/s", file=sys.stderr)
    single, _ = consumer_rate(settings, total, args.consumer_processes)
    print(f"eventrec consumer on one server: {single:,.0f}/s", file=sys.stderr)
    commands = {str(port): after[port] - before.get(port, 0) for port in sorted(after)}
    mean = sum(commands.values()) / len(commands)
    matrix_bytes, dedup_bytes = redis_bytes(measured, total)
    return {
        "cluster": True,
        "masters": len(commands),
        "interactions": total,
        "raw_client_rate": round(raw),
        "consumer_rate": round(rate),
        "consumer_processes": args.consumer_processes,
        "consumer_rate_single_server": round(single),
        "ratio_to_single_server": round(rate / single, 3),
        "ratio_to_raw": round(rate / raw, 3),
        "redis_commands_per_master": commands,
        "commands_per_interaction": round(sum(commands.values()) / total, 4),
        "max_deviation_from_mean_commands": round(
            max(abs(n - mean) for n in commands.values()) / mean, 3
        ),
        "redis_bytes_per_interaction": round(matrix_bytes, 1),
        "dedup_bytes_per_interaction": round(dedup_bytes, 1),
    }


if __name__ == "__main__":
    main()
