"""The local Redis Cluster: `services up --redis-cluster`, and every client made on it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from redis.cluster import RedisCluster

from eventrec.devstack import LocalRedisCluster, LocalServices
from eventrec.errors import ConfigError
from eventrec.store import Store
from eventrec.store.client import connect
from tests.integration.conftest import PORT_OFFSET, REPO

pytestmark = pytest.mark.integration

NODE_LINE = re.compile(
    r"^redis-cluster node (\d): running, pid (\d+) at 127\.0\.0\.1:(\d+) \((.*)\)$", re.M
)


def eventrec(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventrec.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def check_layout(stdout: str, first_port: int) -> list[int]:
    """Three masters holding all 16,384 slots, three replicas of them; returns the PIDs."""
    nodes = NODE_LINE.findall(stdout)
    assert [int(port) for _, _, port, _ in nodes] == list(range(first_port, first_port + 6))
    masters = [detail for *_, detail in nodes if detail.startswith("master")]
    replicas = [detail for *_, detail in nodes if detail.startswith("replica of")]
    assert len(masters) == 3
    assert len(replicas) == 3
    assert sum(int(re.search(r"(\d+) slots", m)[1]) for m in masters) == 16384  # type: ignore[index]
    master_ports = {int(port) for _, _, port, detail in nodes if detail.startswith("master")}
    assert {int(r.rsplit(":", 1)[1]) for r in replicas} == master_ports
    return [int(pid) for _, pid, _, _ in nodes]


def test_up_twice_status_down(tmp_path: Path, services: LocalServices) -> None:
    first_port = 20000 + PORT_OFFSET
    env = {
        **os.environ,
        "EVENTREC_STATE_DIR": str(tmp_path / "state"),
        "EVENTREC_CACHE_DIR": str(REPO / ".cache"),
        # The session's broker: only the cluster is started here.
        "EVENTREC_KAFKA_BOOTSTRAP_SERVERS": services.kafka_address,
        "EVENTREC_LOCAL_REDIS_CLUSTER_PORT": str(first_port),
    }
    pids: list[int] = []
    try:
        up = eventrec(["services", "up", "--redis-cluster"], env)
        assert up.returncode == 0, up.stderr
        pids = check_layout(up.stdout, first_port)
        url = "redis+cluster://" + ",".join(f"127.0.0.1:{first_port + i}" for i in range(6))
        assert f"EVENTREC_REDIS_URL={url}\n" in up.stdout
        assert "redis: " not in up.stdout  # no single server was started
        again = eventrec(["services", "up", "--redis-cluster"], env)
        assert again.returncode == 0, again.stderr
        assert check_layout(again.stdout, first_port) == pids  # nothing started twice
        status = eventrec(["services", "status"], env)
        assert check_layout(status.stdout, first_port) == pids
        assert all(alive(pid) for pid in pids)
    finally:
        down = eventrec(["services", "down"], env)
    assert down.returncode == 0, down.stderr
    for n in range(6):
        assert f"redis-cluster node {n + 1}: stopped at 127.0.0.1:{first_port + n}\n" in down.stdout
    assert pids
    assert not any(alive(pid) for pid in pids)
    assert all(status.running for status in services.status())  # the session's untouched


def test_every_node_is_durable_and_never_evicts(redis_cluster: LocalRedisCluster) -> None:
    for port in redis_cluster.ports:
        node = redis.Redis(port=port)
        try:
            assert node.config_get("appendonly") == {"appendonly": "yes"}
            assert node.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
            assert node.config_get("cluster-enabled") == {"cluster-enabled": "yes"}
        finally:
            node.close()


def test_the_client_factory_makes_a_cluster_client_that_spans_every_master(
    redis_cluster: LocalRedisCluster,
) -> None:
    client = connect(redis_cluster.url)
    try:
        assert isinstance(client, RedisCluster)
        keys = [f"test-factory:{{k{i}}}" for i in range(60)]
        pipe = client.pipeline(transaction=False)
        for i, key in enumerate(keys):
            pipe.set(key, i)
        pipe.execute()
        # Sixty hash tags land on all three masters, and every key reads back.
        assert len({client.get_node_from_key(key).port for key in keys}) == 3
        assert [int(v) for v in (client.get(key) for key in keys)] == list(range(60))
    finally:
        client.delete(*keys)
        client.close()


def test_a_master_that_may_evict_is_refused_by_name(redis_cluster: LocalRedisCluster) -> None:
    master = redis_cluster.masters()[-1]
    node = redis.Redis(port=master.port)
    store = Store(connect(redis_cluster.url), "test-eviction")
    try:
        store.check_eviction_policy()
        node.config_set("maxmemory-policy", "allkeys-lru")
        with pytest.raises(ConfigError, match=f"'allkeys-lru' on node 127.0.0.1:{master.port}"):
            store.check_eviction_policy()
    finally:
        node.config_set("maxmemory-policy", "noeviction")
        node.close()
        store.client.close()
