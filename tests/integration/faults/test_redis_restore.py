"""Redis restored from a copy of its data taken seconds earlier, while the consumer and
serving keep running: every row exact, the id maps a bijection, no one shown another's
history."""

from __future__ import annotations

import json
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import redis

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.model.aggregate import aggregate
from eventrec.model.records import InteractionLog
from eventrec.store import Store, connect
from eventrec.topics import create_topics
from tests.integration.conftest import unique_settings
from tests.integration.faults.harness import (
    NO_COMPACTION,
    NewUsers,
    Record,
    assert_exact,
    expected_rows,
    produce_entities,
    produce_kafka_python,
    wait_caught_up,
)
from tests.integration.ingest_helpers import (
    ConsumerProcess,
    applied_offsets,
    settings_env,
    wait_until,
)

pytestmark = pytest.mark.integration

# The whole catalog fits one response (limit ≤ 50), so every hidden event is visible.
N_EVENTS = 40
LIMIT = 50


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """A Redis server of this test's own, with AOF on as in production."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, appendonly: bool = True) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        with (self.directory / "redis.log").open("ab") as log:
            self.process = subprocess.Popen(
                [
                    "redis-server",
                    "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.directory),
                    "--save", "", "--appendonly", "yes" if appendonly else "no",
                    "--appendfsync", "everysec", "--maxmemory-policy", "noeviction",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip
        client = redis.Redis(port=self.port)

        def up() -> bool:
            try:
                return bool(client.ping())
            except (redis.ConnectionError, redis.BusyLoadingError):
                return False

        wait_until(up, 30, "redis up")
        client.close()

    def backup(self, to: Path) -> None:
        """An operator's backup: a point-in-time RDB copy."""
        client = redis.Redis(port=self.port)
        client.save()
        client.close()
        shutil.copy(self.directory / "dump.rdb", to)

    def restore(self, backup: Path) -> None:
        """Stop it, put the older copy back, start it: everything after the copy is gone."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)
        shutil.rmtree(self.directory / "appendonlydir", ignore_errors=True)
        shutil.copy(backup, self.directory / "dump.rdb")
        self.start(appendonly=False)  # loads the RDB, then AOF on again, as operators do
        client = redis.Redis(port=self.port)
        client.config_set("appendonly", "yes")
        client.close()

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


class ServeProcess:
    def __init__(self, settings: Settings, log_path: Path) -> None:
        self.port = free_port()
        env = settings_env(settings)
        env["EVENTREC_HTTP_PORT"] = str(self.port)
        env["EVENTREC_MIN_INTERACTIONS_PERSONAL"] = "1"
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "eventrec.cli", "serve"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)

    def get(self, path: str, **params: Any) -> dict[str, Any] | None:
        try:
            response = self.client.get(path, params=params)
        except httpx.TransportError:
            return None
        if response.status_code != 200:
            return None
        body: dict[str, Any] = response.json()
        return body

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[RedisServer]:
    own = RedisServer(tmp_path / "redis")
    own.start()
    yield own
    own.stop()


def catalog(n: int) -> list[tuple[bytes | None, bytes]]:
    return [
        (
            f"ev-{i}".encode(),
            json.dumps(
                {
                    "schema_version": 1,
                    "event_id": f"ev-{i}",
                    "title": f"Evening {i}",
                    "category": "music",
                    "city": "Colombo",
                    "price": {"amount": 1000 + i},
                    "starts_at": "2027-06-20T18:00:00+05:30",
                }
            ).encode(),
        )
        for i in range(n)
    ]


def hidden_by_history(records: Counter[Record]) -> set[str]:
    """The events a user's own history hides (booked, rated, dismissed), from what was sent."""
    names = sorted({record[0] for record in records})
    index = {name: i for i, name in enumerate(names)}
    rows = list(records.elements())
    log = InteractionLog.from_columns(
        np.zeros(len(rows), dtype=np.int64),
        np.array([index[r[0]] for r in rows]),
        np.array([r[1] for r in rows]),
        np.array([r[3] for r in rows]),
        np.array([r[2] for r in rows]),
        np.array([r[4] for r in rows]),
        n_users=1,
        n_events=len(names),
    )
    hidden = aggregate(log, now=time.time()).hidden.tocsr()
    return {names[i] for i in hidden.indices.tolist()}


def assert_serving_shows_each_user_only_their_own_history(
    serve: ServeProcess, wanted: dict[str, Counter[Record]], users: list[str]
) -> None:
    for user_id in users:
        own = hidden_by_history(wanted[user_id])
        body = serve.get("/recommendations", user_id=user_id, limit=LIMIT)
        assert body is not None, user_id
        shown = {item["event_id"] for item in body["items"]}
        assert not shown & own, (user_id, "shown what they booked, rated or dismissed")
        # Everything else is shown: hiding another user's events would show here.
        assert shown == {f"ev-{i}" for i in range(N_EVENTS)} - own, user_id


def assert_id_maps_are_a_bijection(settings: Settings) -> None:
    store = Store(connect(settings.redis_url), settings.key_prefix)
    topic = settings.topic_interactions
    owners = store.owners()
    seen: dict[str, int] = {}
    for partition in store.owner_partitions():
        for user_id in store.partition_users(topic, partition):
            assert user_id not in seen, f"{user_id} has rows on {seen[user_id]} and {partition}"
            seen[user_id] = partition
        ids = store.partition_event_ids(topic, partition)
        assert len(set(ids)) == len(ids), f"partition {partition} indexes an event twice"
        index = {
            k.decode(): int(v)
            for k, v in store.client.hgetall(store.keys.event_index(topic, partition)).items()
        }
        assert index == {event_id: i for i, event_id in enumerate(ids)}
    assert all(owners[user_id] == partition for user_id, partition in seen.items())
    store.client.close()


def test_a_restore_from_an_older_copy_keeps_every_row_exact(
    services: LocalServices, server: RedisServer, tmp_path: Path
) -> None:
    settings = unique_settings(services, redis_url=server.url, row_compact_bytes=NO_COMPACTION)
    create_topics(settings)
    produce_entities(settings, settings.topic_events, catalog(N_EVENTS))
    # 10,000 interactions of 2,500 brand-new users: before the copy, lost, and after it.
    before = NewUsers(n_users=800, n_events=N_EVENTS, seed=41, prefix="a", id_prefix="a")
    lost = NewUsers(n_users=900, n_events=N_EVENTS, seed=42, prefix="b", id_prefix="b")
    after = NewUsers(n_users=800, n_events=N_EVENTS, seed=43, prefix="c", id_prefix="c")
    first, second = before.take(3000), lost.take(3000)
    third = after.take(2500) + lost.take(1500)  # lost users come back too
    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    serve = ServeProcess(settings, tmp_path / "serve.log")
    try:
        try:
            wait_until(
                lambda: (
                    len((serve.get("/popular", limit=LIMIT) or {}).get("items", ())) == N_EVENTS
                ),
                120,
                "serving has the catalog",
            )
            produce_kafka_python(settings, first)
            wait_caught_up(settings, 120)
            assert applied_offsets(settings) == len(first)
            server.backup(tmp_path / "backup.rdb")  # the copy holds the first part only

            produce_kafka_python(settings, second)
            wait_caught_up(settings, 120)
            wanted, _, _ = expected_rows(first + second)
            b_users = sorted(u for u in wanted if u.startswith("b-"))[:150]
            # Serving reads these rows now: its event tables know every partition's tail.
            assert_serving_shows_each_user_only_their_own_history(serve, wanted, b_users)

            server.restore(tmp_path / "backup.rdb")
            produce_kafka_python(settings, third)
            wait_caught_up(settings, 180)
            # The consumer found its positions ahead of Redis and replayed the lost part.
            assert "batch fenced" in consumer.log()
        finally:
            assert consumer.stop() == 0, consumer.log()[-3000:]
        sent = first + second + third
        counted = assert_exact(settings, sent)
        assert counted.applied + counted.deduplicated == 10_000
        assert_id_maps_are_a_bijection(settings)
        wanted, _, _ = expected_rows(sent)
        users = b_users + sorted(u for u in wanted if u.startswith("c-"))[:150]
        assert_serving_shows_each_user_only_their_own_history(serve, wanted, users)
    finally:
        serve.stop()
