"""A real Kafka broker and Redis server on loopback, as plain processes, for development.

`eventrec services up` starts Apache Kafka (KRaft, one combined broker and controller,
from the official jars that Maven fetches from Maven Central) and Debian's redis-server
(AOF on, ``noeviction``). Each keeps its data, log and PID under ``state_dir``; ``down``
stops exactly the processes whose PIDs it recorded.
"""

from __future__ import annotations

import base64
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

from eventrec.config import Settings
from eventrec.errors import LocalServicesError

if TYPE_CHECKING:
    from eventrec.devstack.cluster import LocalRedisCluster

log = logging.getLogger(__name__)

KAFKA_VERSION = "4.1.1"
SCALA_VERSION = "2.13"
KAFKA_HEAP = "-Xmx768m"
START_TIMEOUT_SECONDS = 90.0

# Servers outlive the call that started them; keeping their handles lets `down` reap them.
_STARTED: dict[int, subprocess.Popen[bytes]] = {}


@dataclass(frozen=True)
class ServiceStatus:
    name: str
    address: str
    pid: int | None
    running: bool
    managed: bool
    detail: str = ""

    def line(self) -> str:
        if not self.managed:
            return f"{self.name}: external at {self.address} (not managed by eventrec services)"
        state = f"running, pid {self.pid}" if self.running else "stopped"
        detail = f" ({self.detail})" if self.detail else ""
        return f"{self.name}: {state} at {self.address}{detail}"


def _port_open(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot, or None when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[-1].split()
    except OSError:
        return None
    if not fields or fields[0] in ("Z", "X"):
        return None
    return fields[19]


def _pid_alive(record: tuple[int, str] | None) -> bool:
    """True when the recorded process still runs (same PID and start time: not a reused PID)."""
    return record is not None and _start_time(record[0]) == record[1]


def _install_with_apt(package: str) -> None:
    if shutil.which("apt-get") is None or os.geteuid() != 0:
        raise LocalServicesError(
            f"{package} is not installed and cannot be installed here "
            f"(needs apt-get as root): install it, or point eventrec at an existing server"
        )
    log.info("installing %s with apt-get", package)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", package], check=True, env=env)


class LocalServices:
    """The local broker and server of one state directory, on the ports of ``settings``."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.state_dir = settings.state_dir.resolve()
        self.cache_dir = settings.cache_dir.resolve()
        self.kafka_port = settings.local_kafka_port
        self.controller_port = settings.local_kafka_controller_port
        self.redis_port = settings.local_redis_port
        self.manage_kafka = "kafka_bootstrap_servers" not in settings.model_fields_set
        self.manage_redis = "redis_url" not in settings.model_fields_set

    # -- paths -------------------------------------------------------------------------

    @property
    def kafka_dir(self) -> Path:
        return self.state_dir / "kafka"

    @property
    def redis_dir(self) -> Path:
        return self.state_dir / "redis"

    @property
    def kafka_libs(self) -> Path:
        return self.cache_dir / f"kafka-{KAFKA_VERSION}" / "libs"

    @property
    def kafka_address(self) -> str:
        return f"127.0.0.1:{self.kafka_port}"

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    def _pid(self, directory: Path) -> tuple[int, str] | None:
        try:
            pid, started = (directory / "pid").read_text().split()
            return int(pid), started
        except (OSError, ValueError):
            return None

    def _record_pid(self, directory: Path, pid: int, address: str) -> None:
        (directory / "pid").write_text(f"{pid} {_start_time(pid)}\n")
        (directory / "address").write_text(address + "\n")

    def _recorded_address(self, directory: Path, default: str) -> str:
        """Where the recorded process listens: its ports, not the current environment's."""
        try:
            return (directory / "address").read_text().strip() or default
        except OSError:
            return default

    # -- public ------------------------------------------------------------------------

    @property
    def cluster(self) -> LocalRedisCluster:
        """The local Redis Cluster of this state directory (``up(redis_cluster=True)``)."""
        from eventrec.devstack.cluster import LocalRedisCluster

        return LocalRedisCluster(self.settings)

    def up(self, *, redis_cluster: bool = False) -> list[ServiceStatus]:
        """Start whatever is not running yet and wait until every server answers.

        With ``redis_cluster`` the local Redis Cluster is started instead of the single
        Redis server (its URL: ``self.cluster.url``).
        """
        redis_was_running = _pid_alive(self._pid(self.redis_dir))
        if redis_cluster:
            self.cluster.up()
        elif self.manage_redis:
            self._redis_up()
        if self.manage_kafka:
            try:
                self._kafka_up()
            except BaseException:
                # All or nothing: do not leave behind a server this call started.
                if redis_cluster:
                    self.cluster.down()
                elif self.manage_redis and not redis_was_running:
                    self._stop(self.redis_dir, "redis")
                raise
        if redis_cluster:  # the single server was not asked for
            return [s for s in self.status() if s.name != "redis" or s.running]
        return self.status()

    def down(self) -> list[ServiceStatus]:
        """Stop the processes this state directory started; nothing else."""
        stopped = {
            name: self._recorded_address(directory, default)
            for name, directory, default in (
                ("kafka", self.kafka_dir, self.kafka_address),
                ("redis", self.redis_dir, self.redis_url),
            )
        }
        if self.manage_kafka:
            self._stop(self.kafka_dir, "kafka")
        if self.manage_redis:
            self._stop(self.redis_dir, "redis")
        if self.cluster.recorded():
            self.cluster.down()
        return self.status(stopped)

    def status(self, recorded: dict[str, str] | None = None) -> list[ServiceStatus]:
        """Each server's state, at the address it was started on (``recorded`` after down)."""
        statuses = []
        for name, directory, address, managed in (
            ("kafka", self.kafka_dir, self.kafka_address, self.manage_kafka),
            ("redis", self.redis_dir, self.redis_url, self.manage_redis),
        ):
            if not managed:
                external = (
                    self.settings.kafka_bootstrap_servers
                    if name == "kafka"
                    else self.settings.redis_url
                )
                statuses.append(ServiceStatus(name, external, None, False, False))
                continue
            record = self._pid(directory)
            running = _pid_alive(record)
            pid = record[0] if record is not None and running else None
            if running:
                address = self._recorded_address(directory, address)
            elif recorded is not None:
                address = recorded.get(name, address)
            statuses.append(ServiceStatus(name, address, pid, running, True))
        if self.cluster.recorded():
            statuses.extend(self.cluster.status())
        return statuses

    # -- redis -------------------------------------------------------------------------

    def _redis_up(self) -> None:
        if _pid_alive(self._pid(self.redis_dir)):
            return
        if _port_open(self.redis_port):
            raise LocalServicesError(
                f"port {self.redis_port} is taken by a process eventrec did not start: move the "
                f"whole local stack with EVENTREC_LOCAL_REDIS_PORT (every eventrec client "
                f"follows it), or use that server with EVENTREC_REDIS_URL"
            )
        server = shutil.which("redis-server")
        if server is None:
            _install_with_apt("redis-server")
            server = shutil.which("redis-server") or "/usr/bin/redis-server"
        self.redis_dir.mkdir(parents=True, exist_ok=True)
        command = [
            server,
            "--bind", "127.0.0.1",
            "--port", str(self.redis_port),
            "--dir", str(self.redis_dir),
            "--appendonly", "yes",
            "--appendfsync", "everysec",
            "--save", "",
            "--maxmemory-policy", "noeviction",
            "--daemonize", "no",
            "--logfile", str(self.redis_dir / "redis.log"),
        ]  # fmt: skip
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        _STARTED[process.pid] = process
        self._record_pid(self.redis_dir, process.pid, self.redis_url)
        redis_log = self.redis_dir / "redis.log"
        self._wait(lambda: _port_open(self.redis_port), process, "redis", redis_log)
        log.info("redis-server started on port %d (pid %d)", self.redis_port, process.pid)

    # -- kafka -------------------------------------------------------------------------

    def fetch_kafka(self) -> Path:
        """Fetch the pinned broker's jars from Maven Central into the cache, once."""
        marker = self.kafka_libs / f"kafka_{SCALA_VERSION}-{KAFKA_VERSION}.jar"
        if marker.exists():
            return self.kafka_libs
        mvn = shutil.which("mvn")
        if mvn is None:
            _install_with_apt("maven")
            mvn = shutil.which("mvn") or "/usr/bin/mvn"
        work = self.kafka_libs.parent
        work.mkdir(parents=True, exist_ok=True)
        pom = resources.files("eventrec.resources").joinpath("kafka-pom.xml").read_text()
        (work / "pom.xml").write_text(pom.replace("@KAFKA_VERSION@", KAFKA_VERSION))
        staging = work / "libs.partial"
        shutil.rmtree(staging, ignore_errors=True)
        log.info("fetching Apache Kafka %s jars with Maven (first run only)", KAFKA_VERSION)
        result = subprocess.run(
            [
                mvn, "-q", "-B", "-f", str(work / "pom.xml"),
                "dependency:copy-dependencies",
                f"-DoutputDirectory={staging}",
                "-DincludeScope=runtime",
            ],
            capture_output=True,
            text=True,
        )  # fmt: skip
        if result.returncode != 0:
            raise LocalServicesError(
                "mvn could not fetch the Kafka jars:\n" + (result.stdout + result.stderr)[-3000:]
            )
        shutil.rmtree(self.kafka_libs, ignore_errors=True)
        staging.rename(self.kafka_libs)
        return self.kafka_libs

    def _java(self) -> str:
        java = shutil.which("java")
        if java is None:
            _install_with_apt("openjdk-17-jre-headless")
            java = shutil.which("java") or "/usr/bin/java"
        return java

    def _kafka_properties(self) -> Path:
        data = self.kafka_dir / "data"
        properties = {
            "process.roles": "broker,controller",
            "node.id": "1",
            "controller.quorum.voters": f"1@127.0.0.1:{self.controller_port}",
            "listeners": (
                f"PLAINTEXT://127.0.0.1:{self.kafka_port},"
                f"CONTROLLER://127.0.0.1:{self.controller_port}"
            ),
            "advertised.listeners": f"PLAINTEXT://127.0.0.1:{self.kafka_port}",
            "controller.listener.names": "CONTROLLER",
            "inter.broker.listener.name": "PLAINTEXT",
            "listener.security.protocol.map": "PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            "log.dirs": str(data),
            "num.partitions": "1",
            "offsets.topic.replication.factor": "1",
            "offsets.topic.num.partitions": "6",
            "transaction.state.log.replication.factor": "1",
            "transaction.state.log.min.isr": "1",
            "share.coordinator.state.topic.replication.factor": "1",
            "share.coordinator.state.topic.min.isr": "1",
            # Tests and the demo should not wait for group joins.
            "group.initial.rebalance.delay.ms": "0",
            "auto.create.topics.enable": "false",
            "log.retention.hours": "168",
        }
        path = self.kafka_dir / "server.properties"
        path.write_text("".join(f"{key}={value}\n" for key, value in properties.items()))
        return path

    def _kafka_up(self) -> None:
        if _pid_alive(self._pid(self.kafka_dir)):
            return
        for port in (self.kafka_port, self.controller_port):
            if _port_open(port):
                raise LocalServicesError(
                    f"port {port} is taken by a process eventrec did not start: move the "
                    f"whole local stack with EVENTREC_LOCAL_KAFKA_PORT and "
                    f"EVENTREC_LOCAL_KAFKA_CONTROLLER_PORT (every eventrec client follows "
                    f"them), or use that broker with EVENTREC_KAFKA_BOOTSTRAP_SERVERS"
                )
        libs = self.fetch_kafka()
        java = self._java()
        self.kafka_dir.mkdir(parents=True, exist_ok=True)
        properties = self._kafka_properties()
        log4j = self.kafka_dir / "log4j2.properties"
        log4j.write_text(
            resources.files("eventrec.resources").joinpath("kafka-log4j2.properties").read_text()
        )
        classpath = f"{libs}/*"
        if not (self.kafka_dir / "data" / "meta.properties").exists():
            cluster_id = base64.urlsafe_b64encode(uuid.uuid4().bytes).rstrip(b"=").decode()
            result = subprocess.run(
                [
                    java, "-cp", classpath, f"-Dlog4j2.configurationFile={log4j}",
                    f"-Dkafka.logs.dir={self.kafka_dir}",
                    # "--cluster-id=..." form: a base64 id may start with "-".
                    "kafka.tools.StorageTool", "format", f"--cluster-id={cluster_id}",
                    "-c", str(properties), "--ignore-formatted",
                ],
                capture_output=True,
                text=True,
            )  # fmt: skip
            if result.returncode != 0:
                raise LocalServicesError("formatting Kafka's storage failed:\n" + result.stderr)
        command = [
            java, KAFKA_HEAP, "-Xms256m", "-XX:+UseG1GC", "-Djava.awt.headless=true",
            f"-Dlog4j2.configurationFile={log4j}", f"-Dkafka.logs.dir={self.kafka_dir}",
            "-cp", classpath, "kafka.Kafka", str(properties),
        ]  # fmt: skip
        output = (self.kafka_dir / "stdout.log").open("ab")
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        output.close()
        _STARTED[process.pid] = process
        self._record_pid(self.kafka_dir, process.pid, self.kafka_address)
        self._wait(self._kafka_ready, process, "kafka", self.kafka_dir / "server.log")
        log.info(
            "kafka %s started on port %d (pid %d)", KAFKA_VERSION, self.kafka_port, process.pid
        )

    def _kafka_ready(self) -> bool:
        if not _port_open(self.kafka_port):
            return False
        from kafka import KafkaAdminClient
        from kafka.errors import KafkaError

        try:
            admin = KafkaAdminClient(bootstrap_servers=self.kafka_address, request_timeout_ms=3000)
        except (KafkaError, OSError):
            return False
        try:
            admin.list_topics()
            return True
        except (KafkaError, OSError):
            return False
        finally:
            admin.close()

    # -- shared ------------------------------------------------------------------------

    def _wait(
        self,
        ready: Callable[[], bool],
        process: subprocess.Popen[bytes],
        name: str,
        logfile: Path,
    ) -> None:
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise LocalServicesError(
                    f"{name} exited with code {process.returncode} while starting; "
                    f"see {logfile}:\n{_tail(logfile)}"
                )
            if ready():
                return
            time.sleep(0.25)
        raise LocalServicesError(
            f"{name} did not answer within {START_TIMEOUT_SECONDS:.0f}s; see {logfile}"
        )

    def _stop(self, directory: Path, name: str) -> None:
        record = self._pid(directory)
        if record is None or not _pid_alive(record):
            (directory / "pid").unlink(missing_ok=True)
            return
        pid = record[0]
        os.kill(pid, signal.SIGTERM)
        child = _STARTED.pop(pid, None)
        if child is not None:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                log.warning("%s (pid %d) ignored SIGTERM for 30s; killing it", name, pid)
                child.kill()
                child.wait()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and _pid_alive(record):
            time.sleep(0.1)
        if _pid_alive(record):
            log.warning("%s (pid %d) ignored SIGTERM for 30s; killing it", name, pid)
            os.kill(pid, signal.SIGKILL)
            while _pid_alive(record):
                time.sleep(0.05)
        (directory / "pid").unlink(missing_ok=True)
        (directory / "address").unlink(missing_ok=True)
        log.info("%s stopped (pid %d)", name, pid)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"
