"""`eventrec serve --workers N`: one socket per worker, restarts, clean stop, clear errors."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from eventrec.config import Settings
from tests.integration.ingest_helpers import settings_env, wait_until

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found.update(int(child) for child in text)
    return found


def workers_of(pid: int) -> set[int]:
    """Child processes that are serving workers (spawn also starts a resource tracker)."""
    return {
        child
        for child in children(pid)
        if "multiprocessing.spawn" in Path(f"/proc/{child}/cmdline").read_bytes().decode()
        and "resource_tracker" not in Path(f"/proc/{child}/cmdline").read_bytes().decode()
    }


def start(settings: Settings, port: int, log: Path, workers: int) -> subprocess.Popen[bytes]:
    env = settings_env(settings)
    env["EVENTREC_HTTP_PORT"] = str(port)
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "eventrec.cli", "serve", "--workers", str(workers)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_workers_restart_after_a_crash_and_stop_cleanly(settings: Settings, tmp_path: Path) -> None:
    port = free_port()
    log = tmp_path / "serve.log"
    server = start(settings, port, log, workers=2)
    try:
        wait_until(lambda: healthy(port) and len(workers_of(server.pid)) == 2, 60, "two workers")
        first = workers_of(server.pid)
        # Each worker listens on a socket of its own, all on the same port.
        for pid in first:
            assert healthy(port)
            os.kill(pid, 0)
        victim = min(first)
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: len(workers_of(server.pid)) == 2 and victim not in workers_of(server.pid),
            30,
            "the killed worker replaced",
        )
        wait_until(lambda: healthy(port), 30, "serving after the restart")
        answered = sum(healthy(port) for _ in range(20))
        assert answered == 20
        assert "serving worker exited with -9" in log.read_text()
        wait_until(lambda: listeners(port) == 2, 30, "the replacement listening")

        # A second quick death: restarted after 2 s, and meanwhile its socket is closed, so
        # the kernel sends every new connection to the live worker.
        replacement = max(workers_of(server.pid))
        os.kill(replacement, signal.SIGKILL)
        wait_until(lambda: "restarting in 2 s" in log.read_text(), 30, "the second death seen")
        assert listeners(port) == 1
        assert sum(healthy(port) for _ in range(10)) == 10
        wait_until(lambda: listeners(port) == 2, 30, "the replacement's socket")
        wait_until(lambda: len(workers_of(server.pid)) == 2, 30, "two workers again")

        # A second server on the same port is refused, not silently given half the traffic.
        second = start(settings, port, tmp_path / "second.log", workers=2)
        try:
            assert second.wait(timeout=30) == 1
        finally:
            if second.poll() is None:
                second.kill()
                second.wait()
        assert f"cannot listen on 127.0.0.1:{port}" in (tmp_path / "second.log").read_text()

        current = workers_of(server.pid)
        server.send_signal(signal.SIGTERM)
        assert server.wait(timeout=40) == 0
        assert still_running(first | current) == set()
        assert not healthy(port)
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


def listeners(port: int) -> int:
    """Sockets listening on ``port`` (each worker's SO_REUSEPORT socket is one)."""
    suffix = f":{port:04X}"
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            fields = line.split()
            count += fields[1].endswith(suffix) and fields[3] == "0A"
    return count


def still_running(pids: set[int]) -> set[int]:
    """The pids still running (zombies count as gone)."""
    alive = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().split(") ")[1].split()[0]
        except FileNotFoundError:
            continue
        if state != "Z":
            alive.add(pid)
    return alive


@pytest.mark.parametrize("workers", [1, 2])
def test_a_port_in_use_is_a_clear_error(settings: Settings, tmp_path: Path, workers: int) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        log = tmp_path / "serve.log"
        server = start(settings, port, log, workers=workers)
        try:
            assert server.wait(timeout=30) == 1
        finally:
            if server.poll() is None:
                server.kill()
        assert f"cannot listen on 127.0.0.1:{port}" in log.read_text()
