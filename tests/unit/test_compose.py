"""docker-compose.yml, alone and with docker-compose.cluster.yml (every process on a Redis
Cluster): valid for docker-compose 1.29, secrets required, services healthy-gated."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from eventrec.config import load_settings, parse_cluster_url

REPO = Path(__file__).resolve().parents[2]
TOKEN = "compose-test-token-0123456789"
EVENTREC_SERVICES = ("topics", "consumer", "trainer", "serving", "demo-producer")
SERVER = ("docker-compose.yml",)
CLUSTER = ("docker-compose.yml", "docker-compose.cluster.yml")
# The same checks on the single-server file and on the cluster override.
EITHER = pytest.mark.parametrize("files", [SERVER, CLUSTER], ids=["server", "cluster"])


def compose(
    *args: str, token: str | None = TOKEN, files: tuple[str, ...] = SERVER
) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed: run `make setup` (scripts/bootstrap-system.sh)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTREC_")}
    if token is not None:
        env["EVENTREC_ADMIN_TOKEN"] = token
    return subprocess.run(
        [binary, *(x for name in files for x in ("-f", str(REPO / name))), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def resolved(files: tuple[str, ...] = SERVER) -> dict[str, Any]:
    result = compose("config", files=files)
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


@EITHER
def test_config_is_valid(files: tuple[str, ...]) -> None:
    result = compose("config", "-q", files=files)
    assert result.returncode == 0, result.stderr


@EITHER
def test_admin_token_is_required(files: tuple[str, ...]) -> None:
    result = compose("config", "-q", token=None, files=files)
    assert result.returncode != 0
    assert "EVENTREC_ADMIN_TOKEN" in result.stderr


@EITHER
def test_services_wait_for_healthy_dependencies(files: tuple[str, ...]) -> None:
    services = resolved(files)["services"]
    assert {"kafka", "redis", "topics", "consumer", "trainer", "serving"} <= set(services)
    for name in ("consumer", "trainer", "serving"):
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["topics"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["EVENTREC_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert services["serving"]["environment"]["EVENTREC_ADMIN_TOKEN"] == TOKEN
    assert "healthcheck" in services["kafka"]
    assert "healthcheck" in services["redis"]  # on a cluster: the gate that creates it
    if files == SERVER:
        redis_command = " ".join(services["redis"]["command"])
        assert "--appendonly yes" in redis_command
        assert "--maxmemory-policy noeviction" in redis_command
    assert services["topics"]["command"] == ["topics", "create"]


@EITHER
def test_every_command_in_the_compose_file_is_a_valid_eventrec_command(
    files: tuple[str, ...],
) -> None:
    from eventrec.cli import build_parser

    parser = build_parser()
    services = resolved(files)["services"]
    commands = {
        name: s["command"]
        for name, s in services.items()
        if name not in ("kafka", "redis", "prometheus") and not name.startswith("redis-node-")
    }
    assert set(commands) == {"topics", "consumer", "trainer", "serving", "demo-producer"}
    for name, command in commands.items():
        args = parser.parse_args(command)
        assert callable(args.handler), name
    assert services["demo-producer"]["profiles"] == ["demo"]
    assert "--publish" in commands["demo-producer"]


def test_every_eventrec_process_uses_the_six_nodes() -> None:
    services = resolved(CLUSTER)["services"]
    nodes = sorted(name for name in services if name.startswith("redis-node-"))
    assert nodes == [f"redis-node-{n}" for n in range(1, 7)]
    for name in EVENTREC_SERVICES:
        url = services[name]["environment"]["EVENTREC_REDIS_URL"]
        # The processes accept it, and it names exactly the nodes the file runs.
        assert load_settings(redis_url=url).redis_url == url
        seeds = parse_cluster_url(url).nodes
        assert sorted(host for host, _ in seeds) == nodes
        assert {port for _, port in seeds} == {6379}
        if name != "topics":  # creates Kafka topics only
            assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_nodes_run_in_cluster_mode_with_aof_and_noeviction() -> None:
    services = resolved(CLUSTER)["services"]
    volumes = set()
    for n in range(1, 7):
        node = services[f"redis-node-{n}"]
        command = " ".join(node["command"])
        assert "--cluster-enabled yes" in command
        assert "--appendonly yes" in command
        assert "--maxmemory-policy noeviction" in command
        assert "healthcheck" in node
        volumes.add(node["volumes"][0].split(":")[0])
    assert len(volumes) == 6  # each node keeps its data and nodes.conf on its own


def test_the_redis_gate_creates_the_cluster_and_waits_for_every_node() -> None:
    gate = resolved(CLUSTER)["services"]["redis"]
    script = " ".join(gate["command"])
    assert "redis-cli --cluster create" in script
    assert "--cluster-replicas 1" in script
    assert "cluster_state:ok" in " ".join(gate["healthcheck"]["test"])
    assert set(gate["depends_on"]) == {f"redis-node-{n}" for n in range(1, 7)}
