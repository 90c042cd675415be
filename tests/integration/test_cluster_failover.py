"""A master of the Redis Cluster killed mid-stream: its replica takes over, nothing is lost.

The consumer, the trainer and serving run as processes against the local cluster while a
producer streams interactions; the master that holds partition 0 of ``interactions`` is
killed with SIGKILL (what it had not replicated is lost). Its replica takes over, every
process carries on, and every interaction is applied exactly once: exact counters and
exact rows, per user, against what the producer sent.
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


@pytest.mark.parametrize("redis_backend", ["cluster"], indirect=True)
def test_a_master_killed_mid_stream_loses_and_doubles_nothing(
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
    # Partition 0's master: every step of that partition now goes through a failover.
    partition_0 = Keys(settings.key_prefix).offset(settings.topic_interactions, 0)
    victim = redis_client.get_node_from_key(partition_0).port
    statuses: list[int] = []
    watching = threading.Event()
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
        # The second half streams in ten chunks; the master dies after the third.
        step = -(-(len(messages) - half) // 10)
        for chunk in range(10):
            produce(
                settings,
                settings.topic_interactions,
                messages[half + step * chunk : half + step * (chunk + 1)],
            )
            if chunk == 2:
                redis_cluster.stop_node(victim, signal.SIGKILL)
                killed_at = time.monotonic()
            time.sleep(0.2)
        # Until the replica holds the victim's slots and every node agrees.
        redis_cluster.wait_ready(60)
        assert victim not in {m.port for m in redis_cluster.masters()}
        failover_seconds = time.monotonic() - killed_at
        after_failover = datetime.now(UTC).isoformat().replace("+00:00", "Z")
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
        assert serve.client.get("/ready").status_code == 200
        assert consumer.process is not None
        assert consumer.process.poll() is None, consumer.log()[-3000:]
        assert trainer.poll() is None, (tmp_path / "trainer.log").read_text()[-3000:]
    finally:
        watching.set()
        serve.stop()
        trainer.send_signal(signal.SIGTERM)
        trainer.wait(timeout=60)
        consumer_exit = consumer.stop()
        # The killed node comes back as a replica; the cluster is whole for the next test.
        redis_cluster.start_node(victim)
        redis_cluster.wait_ready()
    assert consumer_exit == 0, consumer.log()[-3000:]
    assert failover_seconds < 30
    fenced = consumer.log().count("batch fenced")  # > 0 when the kill lost unreplicated steps
    print(f"failover took {failover_seconds:.1f} s; {fenced} batches fenced and replayed")
    # During the failover serving may answer 503 (Redis unavailable), never anything else.
    assert set(statuses) <= {200, 503}, sorted(set(statuses))
    assert statuses[-len(users) :] == [200] * len(users)
    assert_exactly_once(messages, settings)
    assert_same_matrix(expected_matrix(messages), stored_matrix(settings))
