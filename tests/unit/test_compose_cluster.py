"""docker-compose.cluster.yml: a valid override that puts every eventrec process on a cluster."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from eventrec.config import load_settings, parse_cluster_url

REPO = Path(__file__).resolve().parents[2]
TOKEN = "compose-test-token-0123456789"
EVENTREC_SERVICES = ("topics", "consumer", "trainer", "serving", "demo-producer")


def compose(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed: run `make setup` (scripts/bootstrap-system.sh)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTREC_")}
    env["EVENTREC_ADMIN_TOKEN"] = TOKEN
    files = ["-f", str(REPO / "docker-compose.yml"), "-f", str(REPO / "docker-compose.cluster.yml")]
    return subprocess.run(
        [binary, *files, *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def resolved() -> dict[str, Any]:
    result = compose("config")
    assert result.returncode == 0, result.stderr
    loaded: dict[str, Any] = yaml.safe_load(result.stdout)
    return loaded


def test_the_override_is_valid() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_every_eventrec_process_uses_the_six_nodes() -> None:
    services = resolved()["services"]
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
    services = resolved()["services"]
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
    gate = resolved()["services"]["redis"]
    script = " ".join(gate["command"])
    assert "redis-cli --cluster create" in script
    assert "--cluster-replicas 1" in script
    assert "cluster_state:ok" in " ".join(gate["healthcheck"]["test"])
    assert set(gate["depends_on"]) == {f"redis-node-{n}" for n in range(1, 7)}
