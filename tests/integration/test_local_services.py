"""`eventrec services up` twice, `status`, then `down`: nothing of ours is left running."""

from __future__ import annotations

import os
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


def test_up_twice_status_down(tmp_path: Path, services: LocalServices) -> None:
    env = {
        **os.environ,
        "EVENTREC_STATE_DIR": str(tmp_path / "state"),
        "EVENTREC_CACHE_DIR": str(REPO / ".cache"),
        "EVENTREC_LOCAL_KAFKA_PORT": str(29192 + PORT_OFFSET),
        "EVENTREC_LOCAL_KAFKA_CONTROLLER_PORT": str(29193 + PORT_OFFSET),
        "EVENTREC_LOCAL_REDIS_PORT": str(26479 + PORT_OFFSET),
    }
    kafka_port, redis_port = 29192 + PORT_OFFSET, 26479 + PORT_OFFSET
    # status and down without the ports: they report the ports the servers were started on.
    state_only = {k: v for k, v in env.items() if not k.startswith("EVENTREC_LOCAL_")}
    try:
        first = eventrec(["services", "up"], env)
        assert first.returncode == 0, first.stderr
        second = eventrec(["services", "up"], env)
        assert second.returncode == 0, second.stderr
        assert second.stdout == first.stdout  # same PIDs: nothing was started twice
        status = eventrec(["services", "status"], state_only)
        assert f"kafka: running, pid {pids_of(tmp_path)[0]} at 127.0.0.1:{kafka_port}\n" in (
            status.stdout
        )
        assert (
            f"redis: running, pid {pids_of(tmp_path)[1]} at redis://127.0.0.1:{redis_port}/0"
            in status.stdout
        )
        pids = pids_of(tmp_path)
        assert all(alive(pid) for pid in pids)
    finally:
        down = eventrec(["services", "down"], state_only)
    assert down.returncode == 0, down.stderr
    assert f"kafka: stopped at 127.0.0.1:{kafka_port}\n" in down.stdout
    assert f"redis: stopped at redis://127.0.0.1:{redis_port}/0" in down.stdout
    assert not any(alive(pid) for pid in pids)
    # The test session's own services were not touched.
    assert all(status.running for status in services.status())


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
