"""`eventrec services up` (with or without `--redis-cluster`) twice, `status`, then `down`:
nothing of ours is left running."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from eventrec.devstack import LocalServices
from tests.integration.conftest import PORT_OFFSET, REPO

pytestmark = pytest.mark.integration


def eventrec(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventrec.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def pids_of(tmp_path: Path) -> list[int]:
    return [
        int((tmp_path / "state" / name / "pid").read_text().split()[0])
        for name in ("kafka", "redis")
    ]


NODE_LINE = re.compile(
    r"^redis-cluster node (\d): running, pid (\d+) at 127\.0\.0\.1:(\d+) \((.*)\)$", re.M
)


def cluster_layout(stdout: str, first_port: int) -> list[int]:
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


@pytest.mark.parametrize("backend", ["server", "cluster"])
def test_up_twice_status_down(tmp_path: Path, services: LocalServices, backend: str) -> None:
    """`services up` twice starts nothing twice; `status` shows it; `down` stops all of it.

    ``server``: a broker and a Redis server. ``cluster`` (``--redis-cluster``): the
    session's broker and six Redis Cluster nodes, three masters and their replicas.
    """
    kafka_port, redis_port = 29192 + PORT_OFFSET, 26479 + PORT_OFFSET
    first_port = 20000 + PORT_OFFSET  # the cluster's six nodes
    env = {
        **os.environ,
        "EVENTREC_STATE_DIR": str(tmp_path / "state"),
        "EVENTREC_CACHE_DIR": str(REPO / ".cache"),
    }
    if backend == "server":
        env["EVENTREC_LOCAL_KAFKA_PORT"] = str(kafka_port)
        env["EVENTREC_LOCAL_KAFKA_CONTROLLER_PORT"] = str(29193 + PORT_OFFSET)
        env["EVENTREC_LOCAL_REDIS_PORT"] = str(redis_port)
        up_args = ["services", "up"]
    else:
        env["EVENTREC_KAFKA_BOOTSTRAP_SERVERS"] = services.kafka_address  # the session's
        env["EVENTREC_LOCAL_REDIS_CLUSTER_PORT"] = str(first_port)
        up_args = ["services", "up", "--redis-cluster"]
    # status and down without the ports: they report the ports the servers were started on.
    # (The cluster's nodes are found on the ports of the settings.)
    state_only = {k: v for k, v in env.items() if not k.startswith("EVENTREC_LOCAL_")}
    if backend == "cluster":
        state_only = env
    pids: list[int] = []
    session = [(s.name, s.pid, s.running) for s in services.status()]
    try:
        first = eventrec(up_args, env)
        assert first.returncode == 0, first.stderr
        second = eventrec(up_args, env)
        assert second.returncode == 0, second.stderr
        status = eventrec(["services", "status"], state_only)
        if backend == "server":
            assert second.stdout == first.stdout  # same PIDs: nothing was started twice
            pids = pids_of(tmp_path)
            assert f"kafka: running, pid {pids[0]} at 127.0.0.1:{kafka_port}\n" in status.stdout
            assert (
                f"redis: running, pid {pids[1]} at redis://127.0.0.1:{redis_port}/0"
                in status.stdout
            )
        else:
            pids = cluster_layout(first.stdout, first_port)
            url = "redis+cluster://" + ",".join(f"127.0.0.1:{first_port + i}" for i in range(6))
            assert f"EVENTREC_REDIS_URL={url}\n" in first.stdout
            assert "redis: " not in first.stdout  # no single server was started
            assert cluster_layout(second.stdout, first_port) == pids  # nothing started twice
            assert cluster_layout(status.stdout, first_port) == pids
        assert all(alive(pid) for pid in pids)
    finally:
        down = eventrec(["services", "down"], state_only)
    assert down.returncode == 0, down.stderr
    if backend == "server":
        assert f"kafka: stopped at 127.0.0.1:{kafka_port}\n" in down.stdout
        assert f"redis: stopped at redis://127.0.0.1:{redis_port}/0" in down.stdout
    else:
        for n in range(6):
            stopped = f"redis-cluster node {n + 1}: stopped at 127.0.0.1:{first_port + n}\n"
            assert stopped in down.stdout
    assert pids
    assert not any(alive(pid) for pid in pids)
    # The test session's own services (and its cluster, if started) were not touched.
    assert [(s.name, s.pid, s.running) for s in services.status()] == session


def test_external_servers_are_not_started(tmp_path: Path) -> None:
    env = {
        **os.environ,
        "EVENTREC_STATE_DIR": str(tmp_path / "state"),
        "EVENTREC_KAFKA_BOOTSTRAP_SERVERS": "kafka.example.internal:9092",
        "EVENTREC_REDIS_URL": "redis://redis.example.internal:6379/0",
    }
    result = eventrec(["services", "up"], env)
    assert result.returncode == 0, result.stderr
    assert "kafka: external at kafka.example.internal:9092" in result.stdout
    assert "redis: external at redis://redis.example.internal:6379/0" in result.stdout
    assert not (tmp_path / "state").exists()
