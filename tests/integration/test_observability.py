"""Metrics of every process, the operations port and the dashboard, in a real browser.

One stack for the module: a synthetic platform (plus a few invalid interactions) on the
real broker and server, `eventrec consumer` (two members), `eventrec trainer` and
`eventrec serve --workers 2` as child processes, each with its operations port on a free
loopback port.
The dashboard and /docs are opened in Debian's headless Chromium through chromium-driver.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import SyntheticPlatform, generate
from eventrec.synth.publish import publish
from eventrec.topics import create_topics
from tests.integration.conftest import unique_settings
from tests.integration.ingest_helpers import (
    Message,
    Stream,
    applied_offsets,
    produce,
    settings_env,
    wait_until,
)

pytestmark = pytest.mark.integration

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SECTIONS = ("models", "gate", "lag", "rates", "dead-letters", "trending", "experiments")
PLOTS = ("validation", "cycles", "lag", "rates", "dead-letters", "trending")
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
# Invalid interactions sent beside the platform: reason label -> how many.
INVALID = {"rating": 3, "type": 2}
MORE = Stream(n_users=200, n_events=50, seed=11, invalid_fraction=0.0).take(3000)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def invalid_interactions() -> list[Message]:
    messages = []
    at = datetime.now(UTC).isoformat()
    for i in range(INVALID["rating"]):
        body = {"schema_version": 1, "interaction_id": f"bad-rating-{i}", "user_id": f"u-{i}",
                "event_id": "e-1", "type": "rating", "rating": 9, "occurred_at": at}  # fmt: skip
        messages.append(Message(f"u-{i}".encode(), json.dumps(body).encode(), False, "rating"))
    for i in range(INVALID["type"]):
        body = {"schema_version": 1, "interaction_id": f"bad-type-{i}", "user_id": f"u-{i}",
                "event_id": "e-1", "type": "like", "occurred_at": at}  # fmt: skip
        messages.append(Message(f"u-{i}".encode(), json.dumps(body).encode(), False, "type"))
    return messages


class Process:
    """An eventrec command as a child process, its output in a log file."""

    def __init__(self, args: list[str], env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "eventrec.cli", *args],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout=60)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` on ``port``: (name, sorted labels) -> value."""
    response = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
    assert response.status_code == 200, response.text
    samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


@dataclass
class Stack:
    settings: Settings
    platform: SyntheticPlatform
    http_port: int
    ops_port: int
    consumer_ops_port: int
    trainer_ops_port: int
    serve: Process
    serve_metrics: Path
    consumer: Process
    trainer: Process


@pytest.fixture(scope="module")
def stack(services: LocalServices, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = unique_settings(services, dashboard_sample_seconds=0.5)
    create_topics(settings)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    platform = generate(
        SynthConfig(n_users=600, n_events=150, n_interactions=12_000, seed=5, now=now)
    )
    publish(platform, settings, progress=False)
    produce(settings, settings.topic_interactions, invalid_interactions())
    logs = tmp_path_factory.mktemp("observability")
    ports = {name: free_port() for name in ("http", "ops", "consumer", "trainer")}
    env = settings_env(settings)
    env.update(
        EVENTREC_HTTP_PORT=str(ports["http"]),
        EVENTREC_OPS_PORT=str(ports["ops"]),
        EVENTREC_CONSUMER_OPS_PORT=str(ports["consumer"]),
        EVENTREC_TRAINER_OPS_PORT=str(ports["trainer"]),
    )
    # Two members: /metrics of the first adds up both.
    consumer = Process(
        ["consumer"], {**env, "EVENTREC_CONSUMER_PROCESSES": "2"}, logs / "consumer.log"
    )
    started: list[Process] = [consumer]
    try:
        wait_until(
            lambda: applied_offsets(settings) == len(platform.interactions) + sum(INVALID.values()),
            180,
            "every interaction applied",
        )
        trainer = Process(["trainer"], env, logs / "trainer.log")
        started.append(trainer)

        def cycle_done() -> bool:
            try:
                samples = scrape(ports["trainer"])
            except httpx.TransportError:
                return False
            return any(name == "eventrec_trainer_cycles_total" for name, _ in samples)

        wait_until(cycle_done, 300, "the trainer's first cycle")
        serve_metrics = logs / "serve-metrics"
        serve_metrics.mkdir()
        serve = Process(
            ["serve", "--workers", "2"],
            {**env, "PROMETHEUS_MULTIPROC_DIR": str(serve_metrics)},
            logs / "serve.log",
        )
        started.append(serve)

        def ready() -> bool:
            try:
                url = f"http://127.0.0.1:{ports['http']}/ready"
                return httpx.get(url, timeout=5).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, 90, "serving ready")
        yield Stack(
            settings, platform, ports["http"], ports["ops"], ports["consumer"],
            ports["trainer"], serve, serve_metrics, consumer, trainer,
        )  # fmt: skip
    finally:
        codes = [process.stop() for process in reversed(started)]
        assert codes == [0] * len(started), [p.log()[-3000:] for p in started]


def test_serving_metrics_add_up_over_workers_on_the_ops_port_only(stack: Stack) -> None:
    users = [user.user_id for user in stack.platform.users[:30]]
    for user_id in users:
        # A new connection each time: the kernel spreads them over both workers.
        with httpx.Client(base_url=f"http://127.0.0.1:{stack.http_port}", timeout=10) as client:
            response = client.get("/recommendations", params={"user_id": user_id})
            assert response.status_code == 200, response.text
    # Both workers answered some: each keeps its counters in a file of its own.
    writers = {path.name for path in stack.serve_metrics.glob("counter_*.db")}
    assert len(writers) >= 2, writers
    missing = httpx.get(f"http://127.0.0.1:{stack.http_port}/no/such/path", timeout=5)
    assert missing.status_code == 404
    for path in ("/metrics", "/dashboard"):
        public = httpx.get(f"http://127.0.0.1:{stack.http_port}{path}", timeout=5)
        assert public.status_code == 404, f"{path} must not be on the public port"

    samples = scrape(stack.ops_port)
    requests = value(
        samples,
        "eventrec_http_requests_total",
        endpoint="/recommendations",
        method="GET",
        status="200",
    )
    assert requests == len(users)
    assert (
        value(
            samples,
            "eventrec_http_requests_total",
            endpoint="unmatched",
            method="GET",
            status="404",
        )
        == 3  # /no/such/path, then /metrics and /dashboard on the public port
    )
    assert value(samples, "eventrec_serving_batch_requests_sum") == len(users)
    latency_count = value(
        samples, "eventrec_http_request_duration_seconds_count", endpoint="/recommendations"
    )
    assert latency_count == len(users)
    current = httpx.get(f"http://127.0.0.1:{stack.http_port}/ready", timeout=5).json()
    assert value(samples, "eventrec_serving_model_info", version=current["model_version"]) == 1
    age = value(samples, "eventrec_serving_seconds_since_reload")
    assert age is not None
    assert 0 <= age < 120
    scored = value(samples, "eventrec_serving_scored_vectors_count")
    assert scored is not None
    assert scored > 0


def test_consumer_and_trainer_metrics(stack: Stack) -> None:
    consumer = scrape(stack.consumer_ops_port)
    topic = stack.settings.topic_interactions
    applied = value(consumer, "eventrec_consumer_applied_total", topic=topic)
    assert applied == len(stack.platform.interactions)
    for reason, count in INVALID.items():
        dead = value(consumer, "eventrec_consumer_dead_letters_total", topic=topic, reason=reason)
        assert dead == count, reason
    lags = [v for (name, _), v in consumer.items() if name == "eventrec_consumer_lag_messages"]
    assert lags, "no lag reported"
    assert value(consumer, "eventrec_consumer_redis_step_duration_seconds_count", topic=topic)

    trainer = scrape(stack.trainer_ops_port)
    cycles = {
        dict(labels)["outcome"]: v
        for (name, labels), v in trainer.items()
        if name == "eventrec_trainer_cycles_total"
    }
    assert sum(cycles.values()) >= 1
    ndcg = value(trainer, "eventrec_trainer_validation_score", metric="ndcg@10", model="candidate")
    assert ndcg is not None
    assert 0 < ndcg <= 1
    assert value(trainer, "eventrec_trainer_phase_duration_seconds_count", phase="snapshot")
    if cycles.get("published"):
        published = [
            dict(labels)["version"]
            for (name, labels), v in trainer.items()
            if name == "eventrec_trainer_published_version_info" and v == 1
        ]
        current = httpx.get(f"http://127.0.0.1:{stack.http_port}/ready", timeout=5).json()
        assert published == [current["model_version"]]


def browser(tmp_path: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",  # the tests run as root
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--window-size=1400,2000",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(tmp_path / "chromedriver.log"))
    return webdriver.Chrome(service=service, options=options)


def requested_urls(driver: webdriver.Chrome) -> list[str]:
    urls = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(message["params"]["request"]["url"])
    return urls


def assert_stayed_local(driver: webdriver.Chrome) -> list[str]:
    urls = requested_urls(driver)
    assert urls, "the performance log recorded no request"
    # chrome:// and data: are the browser's own; anything on the network must be local.
    outside = [
        url
        for url in urls
        if urlsplit(url).scheme not in ("chrome", "data", "about")
        and urlsplit(url).hostname not in LOCAL_HOSTS
    ]
    assert not outside, f"requests left the machine: {outside}"
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert not errors, f"console errors: {errors}"
    return urls


def test_dashboard_and_docs_render_offline_in_chromium(stack: Stack, tmp_path: Path) -> None:
    # Traffic while the dashboard's sampler runs, so its rates are not all zero.
    before = applied_offsets(stack.settings)
    produce(stack.settings, stack.settings.topic_interactions, MORE)
    wait_until(
        lambda: applied_offsets(stack.settings) == before + len(MORE), 60, "more interactions"
    )
    time.sleep(1.5)  # a sample after the last batch (one every 0.5 s)
    driver = browser(tmp_path)
    try:
        driver.get(f"http://127.0.0.1:{stack.ops_port}/dashboard")

        def rendered(_: Any) -> bool:
            states = [
                driver.find_element(
                    By.CSS_SELECTOR, f'section[data-section="{name}"]'
                ).get_attribute("data-state")
                for name in SECTIONS
            ]
            if any(state == "error" for state in states):
                raise AssertionError(
                    f"a section failed: {dict(zip(SECTIONS, states, strict=True))}"
                )
            if not all(state == "ready" for state in states):
                return False
            return all(
                driver.find_elements(By.CSS_SELECTOR, f'[data-plot="{plot}"] .datum')
                for plot in PLOTS
            )

        WebDriverWait(driver, 60, poll_frequency=0.5).until(rendered)
        points = {
            plot: len(driver.find_elements(By.CSS_SELECTOR, f'[data-plot="{plot}"] .datum'))
            for plot in PLOTS
        }
        assert all(count >= 1 for count in points.values()), points
        # Dead letters: one bar per reason the test sent, with its count.
        bars = driver.find_elements(By.CSS_SELECTOR, '[data-plot="dead-letters"] .datum title')
        shown = {bar.get_attribute("textContent") for bar in bars}
        assert shown == {f"{reason}: {count}" for reason, count in INVALID.items()}, shown
        # Trending shows event titles of the platform.
        titles = {event.title for event in stack.platform.events}
        labels = driver.find_elements(By.CSS_SELECTOR, '[data-plot="trending"] .datum title')
        assert any(label.get_attribute("textContent").split(" · ")[0] in titles for label in labels)
        rates = driver.find_elements(By.CSS_SELECTOR, '[data-plot="rates"] .datum title')
        applied = [r.get_attribute("textContent") for r in rates]
        assert any(t.startswith("applied: ") and not t.startswith("applied: 0 ") for t in applied)
        experiments = driver.find_element(By.CSS_SELECTOR, 'section[data-section="experiments"]')
        assert "No experiments" in experiments.text
        driver.save_screenshot(str(tmp_path / "dashboard.png"))
        assert_stayed_local(driver)

        driver.get(f"http://127.0.0.1:{stack.http_port}/docs")
        WebDriverWait(driver, 60, poll_frequency=0.5).until(
            lambda d: d.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
        )
        paths = {
            element.get_attribute("data-path")
            for element in driver.find_elements(By.CSS_SELECTOR, ".opblock-summary-path")
        }
        assert "/recommendations" in paths
        assert "eventrec" in driver.find_element(By.CSS_SELECTOR, ".info .title").text
        driver.save_screenshot(str(tmp_path / "docs.png"))
        urls = assert_stayed_local(driver)
        assert any(url.endswith("/docs-assets/swagger-ui-bundle.js") for url in urls)
    finally:
        driver.quit()
