"""A local Redis Cluster for development and tests: three masters, three replicas.

`eventrec services up --redis-cluster` starts six Debian redis-server processes in
cluster mode (AOF on, ``noeviction``) on ``local_redis_cluster_port`` and the five ports
after it (cluster bus: each port + 10000), and joins them with ``redis-cli --cluster
create``. Each node keeps its data, ``nodes.conf``, log and PID under
``state_dir/redis-cluster/<port>``; a later ``up`` restarts the same cluster from them.
"""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from eventrec.config import Settings
from eventrec.devstack.services import (
    _STARTED,
    START_TIMEOUT_SECONDS,
    ServiceStatus,
    _install_with_apt,
    _pid_alive,
    _port_open,
    _start_time,
    _tail,
)
from eventrec.errors import LocalServicesError

log = logging.getLogger(__name__)

MASTERS = 3
NODES = 2 * MASTERS
BUS_PORT_OFFSET = 10_000
# How long a master may be unreachable before its replica takes over. Short, for a fast
# failover in tests; long enough that a loaded machine does not trigger one by itself.
NODE_TIMEOUT_MS = 3000
SLOTS = 16384


@dataclass(frozen=True)
class ClusterNode:
    """One node as the cluster sees it (``CLUSTER NODES``)."""

    node_id: str
    port: int
    role: str  # "master" or "replica"
    master_id: str | None
    slots: tuple[tuple[int, int], ...]
    failed: bool

    @property
    def slot_count(self) -> int:
        return sum(end - start + 1 for start, end in self.slots)

    def describe(self, masters: dict[str, int]) -> str:
        if self.role == "master":
            ranges = ",".join(f"{a}-{b}" if a != b else str(a) for a, b in self.slots)
            return f"master, {self.slot_count} slots ({ranges or 'none'})"
        master = masters.get(self.master_id or "")
        return f"replica of 127.0.0.1:{master}" if master else "replica"


def parse_cluster_nodes(reply: dict[str, dict[str, Any]]) -> list[ClusterNode]:
    """The nodes of a ``CLUSTER NODES`` reply as redis-py parses it (address -> fields)."""
    nodes = []
    for address, fields in reply.items():
        flags = str(fields["flags"]).split(",")
        port = address.split("@")[0].rsplit(":", 1)[-1]
        nodes.append(
            ClusterNode(
                node_id=str(fields["node_id"]),
                port=int(port) if port.isdigit() else 0,
                role="master" if "master" in flags else "replica",
                master_id=None if fields["master_id"] == "-" else str(fields["master_id"]),
                slots=tuple((int(r[0]), int(r[-1])) for r in fields.get("slots", ()) if r and r[0]),
                failed="fail" in flags or "fail?" in flags,
            )
        )
    return nodes


class LocalRedisCluster:
    """The six nodes of one state directory, on the ports of ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.state_dir = settings.state_dir.resolve() / "redis-cluster"
        self.first_port = settings.local_redis_cluster_port
        self.ports = [self.first_port + i for i in range(NODES)]

    @property
    def url(self) -> str:
        """The ``EVENTREC_REDIS_URL`` of this cluster (every node as a seed)."""
        return "redis+cluster://" + ",".join(f"127.0.0.1:{port}" for port in self.ports)

    def node_dir(self, port: int) -> Path:
        return self.state_dir / str(port)

    def _pid(self, port: int) -> tuple[int, str] | None:
        try:
            pid, started = (self.node_dir(port) / "pid").read_text().split()
            return int(pid), started
        except (OSError, ValueError):
            return None

    def pid(self, port: int) -> int | None:
        """The PID of a running node, or None."""
        record = self._pid(port)
        return record[0] if record is not None and _pid_alive(record) else None

    def recorded(self) -> bool:
        """True when this state directory holds a cluster (running or not)."""
        return any((self.node_dir(port) / "nodes.conf").exists() for port in self.ports)

    # -- up / down ---------------------------------------------------------------------

    def up(self) -> list[ServiceStatus]:
        """Start the nodes that are not running, create the cluster once, wait until ok."""
        started: list[int] = []
        try:
            for port in self.ports:
                if self.start_node(port):
                    started.append(port)
            if not self._formed():
                self._create()
            self.wait_ready()
        except BaseException:
            # All or nothing: do not leave behind nodes this call started.
            for port in started:
                self.stop_node(port)
            raise
        return self.status()

    def down(self) -> list[ServiceStatus]:
        for port in self.ports:
            self.stop_node(port)
        return self.status()

    def start_node(self, port: int) -> bool:
        """Start one node (its cluster state comes back from its nodes.conf); False if up."""
        if _pid_alive(self._pid(port)):
            return False
        for taken in (port, port + BUS_PORT_OFFSET):
            if _port_open(taken):
                raise LocalServicesError(
                    f"port {taken} is taken by a process eventrec did not start: move the "
                    f"local cluster with EVENTREC_LOCAL_REDIS_CLUSTER_PORT (it uses "
                    f"{self.first_port}-{self.first_port + NODES - 1} and those + 10000)"
                )
        server = shutil.which("redis-server")
        if server is None:
            _install_with_apt("redis-server")
            server = shutil.which("redis-server") or "/usr/bin/redis-server"
        directory = self.node_dir(port)
        directory.mkdir(parents=True, exist_ok=True)
        command = [
            server,
            "--bind", "127.0.0.1",
            "--port", str(port),
            "--dir", str(directory),
            "--cluster-enabled", "yes",
            "--cluster-config-file", "nodes.conf",
            "--cluster-node-timeout", str(NODE_TIMEOUT_MS),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", str(directory / "redis.log"),
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _STARTED[process.pid] = process
        (directory / "pid").write_text(f"{process.pid} {_start_time(process.pid)}\n")
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while not _port_open(port):
            if process.poll() is not None:
                raise LocalServicesError(
                    f"redis-server (cluster node {port}) exited with code "
                    f"{process.returncode} while starting; see {directory / 'redis.log'}:\n"
                    f"{_tail(directory / 'redis.log')}"
                )
            if time.monotonic() > deadline:
                raise LocalServicesError(f"cluster node {port} did not answer")
            time.sleep(0.1)
        log.info("redis cluster node started on port %d (pid %d)", port, process.pid)
        return True

    def stop_node(self, port: int, sig: int = signal.SIGTERM) -> None:
        """Stop one node (``SIGKILL``: as a crash would) and wait until it is gone."""
        record = self._pid(port)
        pid_file = self.node_dir(port) / "pid"
        if record is None or not _pid_alive(record):
            pid_file.unlink(missing_ok=True)
            return
        pid = record[0]
        os.kill(pid, sig)
        child = _STARTED.pop(pid, None)
        if child is not None:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        deadline = time.monotonic() + 30
        while _pid_alive(record):
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        pid_file.unlink(missing_ok=True)
        log.info("redis cluster node on port %d stopped (pid %d)", port, pid)

    # -- the cluster -------------------------------------------------------------------

    def _client(self, port: int) -> redis.Redis:
        return redis.Redis(host="127.0.0.1", port=port, socket_timeout=5, decode_responses=True)

    def nodes(self) -> list[ClusterNode]:
        """The cluster as the first running node sees it ([] when none runs)."""
        for port in self.ports:
            if self.pid(port) is None:
                continue
            client = self._client(port)
            try:
                return parse_cluster_nodes(client.cluster("NODES"))
            except redis.RedisError:
                continue
            finally:
                client.close()
        return []

    def _formed(self) -> bool:
        known = [n for n in self.nodes() if n.port in self.ports]
        return sum(n.slot_count for n in known if n.role == "master") == SLOTS

    def _create(self) -> None:
        cli = shutil.which("redis-cli")
        if cli is None:
            _install_with_apt("redis-tools")
            cli = shutil.which("redis-cli") or "/usr/bin/redis-cli"
        result = subprocess.run(
            [
                cli, "--cluster", "create",
                *(f"127.0.0.1:{port}" for port in self.ports),
                "--cluster-replicas", "1", "--cluster-yes",
            ],
            capture_output=True,
            text=True,
            timeout=120,
        )  # fmt: skip
        if result.returncode != 0:
            raise LocalServicesError(
                "redis-cli --cluster create failed:\n" + (result.stdout + result.stderr)[-3000:]
            )
        log.info("redis cluster created on ports %d-%d", self.ports[0], self.ports[-1])

    def masters(self) -> list[ClusterNode]:
        return [n for n in self.nodes() if n.role == "master" and n.slots and not n.failed]

    def wait_ready(self, timeout: float = START_TIMEOUT_SECONDS) -> None:
        """Until every running node says the cluster is ok and every replica has synced."""
        deadline = time.monotonic() + timeout
        problem = "no node answered"
        while time.monotonic() < deadline:
            problem = self._not_ready()
            if not problem:
                return
            time.sleep(0.25)
        raise LocalServicesError(f"the local Redis Cluster is not ready: {problem}")

    def _not_ready(self) -> str:
        running = [port for port in self.ports if self.pid(port) is not None]
        if not running:
            return "no node runs"
        for port in running:
            client = self._client(port)
            try:
                if client.cluster("INFO").get("cluster_state") != "ok":
                    return f"node {port}: cluster_state is not ok"
                replication = client.info("replication")
                if replication.get("role") == "slave":
                    if replication.get("master_link_status") != "up":
                        return f"node {port}: replica not in sync with its master"
                    if replication.get("master_sync_in_progress"):
                        return f"node {port}: replica still syncing"
            except redis.RedisError as exc:
                return f"node {port}: {exc}"
            finally:
                client.close()
        views = set()
        for port in running:  # every node must see the same masters (gossip has settled)
            client = self._client(port)
            try:
                view = parse_cluster_nodes(client.cluster("NODES"))
            except redis.RedisError as exc:
                return f"node {port}: {exc}"
            finally:
                client.close()
            views.add(tuple(sorted((n.port, n.slots) for n in view if n.role == "master")))
        if len(views) > 1:
            return "the nodes do not agree yet on which master holds which slots"
        nodes = [n for n in self.nodes() if n.port in running]
        masters = [n for n in nodes if n.role == "master" and n.slots]
        if sum(n.slot_count for n in masters) != SLOTS:
            return "not every slot has a master"
        if any(n.failed for n in nodes):
            return "a running node is marked failed"
        return ""

    def status(self) -> list[ServiceStatus]:
        nodes = {n.port: n for n in self.nodes()}
        masters = {n.node_id: n.port for n in nodes.values() if n.role == "master"}
        statuses = []
        for index, port in enumerate(self.ports):
            pid = self.pid(port)
            node = nodes.get(port)
            detail = node.describe(masters) if node is not None and pid is not None else ""
            statuses.append(
                ServiceStatus(
                    f"redis-cluster node {index + 1}",
                    f"127.0.0.1:{port}",
                    pid,
                    pid is not None,
                    True,
                    detail,
                )
            )
        return statuses
