"""A master of the Redis Cluster dies with writes its replica never received.

The consumer, the trainer and serving run as processes against the local cluster while a
producer streams interactions. The replica of the master that holds partition 0 of
``interactions`` is killed first (SIGKILL); the consumer goes on writing to the master,
which acknowledges steps nobody replicates; then the master is killed (SIGKILL), the
replica restarts from its own AOF and takes the master's slots (``CLUSTER FAILOVER
TAKEOVER``). The master's partitions' stored offsets go back: the steps it acknowledged
are lost. With nothing more published, the consumer finds the loss by itself (its
periodic check) and replays the lost tail from Kafka; then the stream resumes. Every
process carries on, and every interaction is applied exactly once: exact counters
(published = applied + de-duplicated + dead-lettered) and exact rows, per user, against
what the producer sent.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from eventrec.config import Settings
from eventrec.devstack import LocalRedisCluster
from eventrec.store import Store, connect
from eventrec.store.history import trainer_history
from eventrec.store.keys import Keys
from tests.integration.ingest_helpers import (
    ConsumerProcess,
    Message,
    Stream,
    applied_offsets,
    assert_exactly_once,
    assert_same_matrix,
    expected_matrix,
    produce,
    settings_env,
    stored_matrix,
    wait_until,
)
from tests.integration.test_serving import ServeProcess

pytestmark = pytest.mark.integration

ADMIN_TOKEN = "failover-admin-token-0123456789"


def catalog(n_events: int) -> list[Message]:
    messages = []
    for n in range(n_events):
        body = {
            "schema_version": 1,
            "event_id": f"event-{n}",
            "title": f"Galle Literary Evening {n}",
            "category": ("music", "theatre", "sports", "food")[n % 4],
            "city": ("Colombo", "Kandy", "Galle")[n % 3],
            "price": {"amount": 1500 + 100 * (n % 20), "currency": "LKR"},
            "starts_at": "2027-03-01T18:00:00+05:30",
        }
        messages.append(Message(body["event_id"].encode(), json.dumps(body).encode(), True))
    return messages


def start_trainer(settings: Settings, log_path: Path) -> subprocess.Popen[bytes]:
    env = settings_env(settings)
    env["EVENTREC_TRAIN_INTERVAL_SECONDS"] = "4"
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "eventrec.cli", "trainer"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def cycles_since(settings: Settings, instant: str) -> list[dict[str, Any]]:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    try:
        return [c for c in trainer_history(store) if c["at"] > instant]
    finally:
        store.client.close()


def stored_offsets(settings: Settings, partitions: list[int]) -> dict[int, int | None]:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    try:
        return store.stored_offsets(settings.topic_interactions, partitions)
    finally:
        store.client.close()


def take_over(redis_cluster: LocalRedisCluster, port: int, timeout: float = 60) -> None:
    """``CLUSTER FAILOVER TAKEOVER`` on a replica: it takes its master's slots, no vote."""
    deadline = time.monotonic() + timeout
    while True:
        node = redis.Redis(host="127.0.0.1", port=port, socket_timeout=5)
        try:
            node.execute_command("CLUSTER", "FAILOVER", "TAKEOVER")
            return
        except redis.RedisError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)  # still loading its AOF
        finally:
            node.close()


@pytest.mark.parametrize("redis_backend", ["cluster"], indirect=True)
def test_a_master_that_lost_unreplicated_writes_loses_and_doubles_nothing(
    settings: Settings, redis_cluster: LocalRedisCluster, redis_client: Any, tmp_path: Path
) -> None:
    stream = Stream(n_users=1500, n_events=200, seed=41, duplicate_fraction=0.01)
    messages = stream.take(30_000)
    produce(settings, settings.topic_events, catalog(200))
    half = len(messages) // 2  # take() adds the duplicates: more than 30,000 messages
    produce(settings, settings.topic_interactions, messages[:half])

    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    trainer = start_trainer(settings, tmp_path / "trainer.log")
    serve = ServeProcess(settings, tmp_path / "serve.log", ADMIN_TOKEN)
    keys = Keys(settings.key_prefix)
    # Partition 0's master, the other partitions it holds, and its replica.
    victim = redis_client.get_node_from_key(keys.offset(settings.topic_interactions, 0)).port
    on_victim = [
        p
        for p in range(settings.topic_partitions)
        if redis_client.get_node_from_key(keys.offset(settings.topic_interactions, p)).port
        == victim
    ]
    nodes = redis_cluster.nodes()
    (victim_id,) = [n.node_id for n in nodes if n.port == victim]
    (replica,) = [n.port for n in nodes if n.master_id == victim_id]
    statuses: list[int] = []
    watching = threading.Event()
    # The second half streams in ten chunks: the replica dies before the fourth, the
    # master after the fifth is applied; the last five come after the failover.
    step = -(-(len(messages) - half) // 10)
    chunks = [messages[half + step * i : half + step * (i + 1)] for i in range(10)]
    try:
        wait_until(lambda: applied_offsets(settings) >= half, 180, "the first half applied")
        serve.wait_ready(120)
        users = sorted({m.body["user_id"] for m in messages[:half] if m.body})[:20]

        def watch() -> None:
            with httpx.Client(base_url=str(serve.client.base_url), timeout=10) as client:
                while not watching.is_set():
                    for user_id in users:
                        try:
                            response = client.get("/recommendations", params={"user_id": user_id})
                            statuses.append(response.status_code)
                        except httpx.TransportError:
                            statuses.append(0)
                    time.sleep(0.05)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        published = half
        for number, chunk in enumerate(chunks[:5]):
            if number == 3:
                redis_cluster.stop_node(replica, signal.SIGKILL)
            produce(settings, settings.topic_interactions, chunk)
            published += len(chunk)
            time.sleep(0.2)
        wait_until(lambda: applied_offsets(settings) == published, 180, "five chunks applied")
        acknowledged = stored_offsets(settings, on_victim)
        redis_cluster.stop_node(victim, signal.SIGKILL)
        killed_at = time.monotonic()
        redis_cluster.start_node(replica)  # from its own AOF: none of chunks 3 and 4
        take_over(redis_cluster, replica)
        redis_cluster.wait_ready(60)
        assert replica in {m.port for m in redis_cluster.masters()}
        failover_seconds = time.monotonic() - killed_at
        # Acknowledged steps were lost: every partition of the dead master went back.
        after_loss = stored_offsets(settings, on_victim)
        for partition in on_victim:
            assert (after_loss[partition] or 0) < (acknowledged[partition] or 0), (
                partition,
                after_loss,
                acknowledged,
            )
        # Nothing more is published: the consumer must find the loss and replay by itself.
        wait_until(lambda: applied_offsets(settings) == published, 120, "the lost tail replayed")
        replayed_seconds = time.monotonic() - killed_at
        after_failover = datetime.now(UTC).isoformat().replace("+00:00", "Z")
        for chunk in chunks[5:]:
            produce(settings, settings.topic_interactions, chunk)
            time.sleep(0.2)
        wait_until(lambda: applied_offsets(settings) == len(messages), 180, "every offset applied")
        # The trainer carries on: a whole cycle (snapshot, fit, gate) after the failover.
        wait_until(
            lambda: any(
                c["outcome"] in ("published", "gated")
                for c in cycles_since(settings, after_failover)
            ),
            180,
            "a trainer cycle after the failover",
        )
        watching.set()
        watcher.join(timeout=30)
        # Serving carries on: every user answered again, and the processes still run.
        for user_id in users:
            assert (
                serve.client.get("/recommendations", params={"user_id": user_id}).status_code == 200
            )
        ready = serve.client.get("/ready")
        assert ready.status_code == 200, ready.text
        assert consumer.process is not None
        assert consumer.process.poll() is None, consumer.log()[-3000:]
        assert trainer.poll() is None, (tmp_path / "trainer.log").read_text()[-3000:]
    finally:
        watching.set()
        serve.stop()
        trainer.send_signal(signal.SIGTERM)
        trainer.wait(timeout=60)
        consumer_exit = consumer.stop()
        # Both nodes run again (the old master as the new master's replica).
        redis_cluster.start_node(replica)
        redis_cluster.start_node(victim)
        redis_cluster.wait_ready()
    assert consumer_exit == 0, consumer.log()[-3000:]
    assert failover_seconds < 30
    lost = consumer.log().count("lost writes")
    print(
        f"failover took {failover_seconds:.1f} s; partitions {on_victim} went back from "
        f"{acknowledged} to {after_loss}; replayed {replayed_seconds:.1f} s after the kill, "
        f"{lost} losses found by the periodic check"
    )
    assert lost >= len(on_victim)
    # During the failover serving may answer 503 (Redis unavailable), never anything else.
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert statuses[-len(users) :] == [200] * len(users)
    assert_exactly_once(messages, settings)
    assert_same_matrix(expected_matrix(messages), stored_matrix(settings))
