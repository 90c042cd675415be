"""docker-compose.yml: valid for docker-compose 1.29, secrets required, services healthy-gated."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
TOKEN = "compose-test-token-0123456789"


def compose(*args: str, token: str | None = TOKEN) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is not installed: run `make setup` (scripts/bootstrap-system.sh)"
    env = {k: v for k, v in os.environ.items() if not k.startswith("EVENTREC_")}
    if token is not None:
        env["EVENTREC_ADMIN_TOKEN"] = token
    return subprocess.run(
        [binary, "-f", str(REPO / "docker-compose.yml"), *args],
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


def test_config_is_valid() -> None:
    result = compose("config", "-q")
    assert result.returncode == 0, result.stderr


def test_admin_token_is_required() -> None:
    result = compose("config", "-q", token=None)
    assert result.returncode != 0
    assert "EVENTREC_ADMIN_TOKEN" in result.stderr


def test_services_wait_for_healthy_dependencies() -> None:
    services = resolved()["services"]
    assert {"kafka", "redis", "topics", "consumer", "trainer", "serving"} <= set(services)
    for name in ("consumer", "trainer", "serving"):
        depends = services[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["redis"]["condition"] == "service_healthy"
        assert depends["topics"]["condition"] == "service_completed_successfully"
        assert services[name]["environment"]["EVENTREC_KAFKA_BOOTSTRAP_SERVERS"] == "kafka:9092"
    assert services["serving"]["environment"]["EVENTREC_ADMIN_TOKEN"] == TOKEN
    assert "healthcheck" in services["kafka"]
    assert "healthcheck" in services["redis"]
    redis_command = " ".join(services["redis"]["command"])
    assert "--appendonly yes" in redis_command
    assert "--maxmemory-policy noeviction" in redis_command
    assert services["topics"]["command"] == ["topics", "create"]


def test_every_command_in_the_compose_file_is_a_valid_eventrec_command() -> None:
    from eventrec.cli import build_parser

    parser = build_parser()
    services = resolved()["services"]
    commands = {
        name: s["command"]
        for name, s in services.items()
        if name not in ("kafka", "redis", "prometheus")
    }
    assert set(commands) == {"topics", "consumer", "trainer", "serving", "demo-producer"}
    for name, command in commands.items():
        args = parser.parse_args(command)
        assert callable(args.handler), name
    assert services["demo-producer"]["profiles"] == ["demo"]
    assert "--publish" in commands["demo-producer"]
