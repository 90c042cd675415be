"""The compose `observability` profile: Prometheus' config is valid and scrapes every
eventrec process on the operations port that process is configured with."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml

from tests.unit.test_compose import compose, resolved

REPO = Path(__file__).resolve().parents[2]
PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
# The process of each service, and the setting that holds its operations port.
OPS_PORT_SETTINGS = {
    "serving": "EVENTREC_OPS_PORT",
    "consumer": "EVENTREC_CONSUMER_OPS_PORT",
    "trainer": "EVENTREC_TRAINER_OPS_PORT",
}


def test_promtool_accepts_the_prometheus_config() -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not installed: run `make setup` (scripts/bootstrap-system.sh)"
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_CONFIG)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_the_observability_profile_is_valid_compose() -> None:
    result = compose("--profile", "observability", "config", "-q")
    assert result.returncode == 0, result.stderr


def test_prometheus_scrapes_every_eventrec_process_on_its_ops_port() -> None:
    services = resolved()["services"]
    prometheus = services["prometheus"]
    assert prometheus["profiles"] == ["observability"]
    # docker-compose 1.29 prints volumes as "source:target:mode".
    mounts = {
        target: source
        for source, target in (volume.split(":")[:2] for volume in prometheus["volumes"])
    }
    assert Path(mounts["/etc/prometheus/prometheus.yml"]) == PROMETHEUS_CONFIG
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text())
    scraped = {}
    for job in config["scrape_configs"]:
        for discovery in job.get("dns_sd_configs", ()):
            for name in discovery["names"]:
                scraped[name] = discovery["port"]
    for service, setting in OPS_PORT_SETTINGS.items():
        environment = services[service]["environment"]
        assert environment["EVENTREC_OPS_HOST"] == "0.0.0.0"  # the compose network
        assert scraped[service] == int(environment[setting]), service


def test_ops_ports_are_published_on_loopback_only() -> None:
    services = resolved()["services"]
    published = 0
    for name, service in services.items():
        for port in service.get("ports", ()):
            # Either {"published", "target"} or "[host_ip:]published:target/proto".
            if isinstance(port, dict):
                host_ip, target = port.get("host_ip"), int(port["target"])
            else:
                parts = port.split("/")[0].split(":")
                host_ip = parts[0] if len(parts) == 3 else None
                target = int(parts[-1])
            if target in (8001, 8002, 8003, 9090):
                published += 1
                assert host_ip == "127.0.0.1", (name, port)
    assert published == 2  # serving's dashboard and Prometheus
