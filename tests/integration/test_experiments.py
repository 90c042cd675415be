"""A/B experiments end to end: serving → impressions → consumer → attribution → report.

Simulated users (``experiments.simulate``) request recommendations from a real serving
process and publish views, saves and bookings with planted propensities to a real
broker; the consumer attributes them. No model is trained: the variants differ by
strategy (serving's profile-aware default against plain trending).
"""

from __future__ import annotations

import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from eventrec.devstack import LocalServices
from eventrec.experiments.simulate import SimulationResult, simulate_experiment
from eventrec.store.store import Store, connect
from eventrec.store.versions import (
    activate_version,
    current_version,
    export_version,
    import_version,
)
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import generate
from eventrec.synth.publish import publish
from eventrec.topics import create_topics
from tests.integration.conftest import unique_settings
from tests.integration.ingest_helpers import ConsumerProcess, settings_env, wait_until
from tests.integration.test_serving import ADMIN_TOKEN, ServeProcess, Stack, trainer_once

pytestmark = pytest.mark.integration

ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
USERS = 600


@pytest.fixture(scope="module")
def stack(services: LocalServices, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    settings = unique_settings(services)
    create_topics(settings)
    now = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    platform = generate(
        SynthConfig(n_users=1500, n_events=300, n_interactions=3000, seed=5, now=now)
    )
    publish(platform, settings, progress=False)
    logs = tmp_path_factory.mktemp("experiments")
    consumer = ConsumerProcess(settings, logs / "consumer.log").start()
    serve = ServeProcess(settings, logs / "serve.log", ADMIN_TOKEN)
    try:
        serve.wait_ready()

        store = Store(connect(settings.redis_url), settings.key_prefix)

        def catalog_and_profiles_loaded() -> bool:
            profiles = store.entity_documents("users", settings.topic_users)
            body = serve.recommend(platform.users[-1].user_id)
            return len(profiles) == len(platform.users) and len(body["items"]) == 10

        wait_until(catalog_and_profiles_loaded, 120, "catalog and profiles applied")
        store.client.close()

        def serving_sees_every_profile() -> bool:
            # Serving re-reads which partitions hold profiles every few seconds.
            return all(
                serve.recommend(user.user_id)["strategy"].startswith("trending_profile")
                for user in platform.users
            )

        wait_until(serving_sees_every_profile, 120, "serving uses every profile")
        yield Stack(settings, platform, serve)
    finally:
        serve.stop()
        consumer.stop()


def create(stack: Stack, spec: dict[str, Any]) -> dict[str, Any]:
    response = stack.serve.client.post("/experiments", json=spec, headers=ADMIN)
    assert response.status_code == 201, response.text
    body: dict[str, Any] = response.json()
    return body


def wait_until_served(stack: Stack, name: str) -> Counter[str]:
    """Serving picks a new experiment up within a second: wait, so that every simulated
    request is in it. The probe user's impressions per variant, to add to the expected."""
    probes: Counter[str] = Counter()

    def sees() -> bool:
        assigned = stack.serve.recommend(f"probe-{name}").get("experiment") or {}
        if assigned.get("name") == name:
            probes[assigned["variant"]] += 1
            return True
        return False

    wait_until(sees, 30, f"serving sees {name}")
    return probes


def report_when_attributed(
    stack: Stack, name: str, sent: SimulationResult, probes: Counter[str]
) -> dict[str, Any]:
    """The report once every published outcome and impression has been counted."""
    wanted = {
        variant: {
            "impressions": c["impressions"] + probes[variant],
            "view": c["view"],
            "booking": c["booking"],
        }
        for variant, c in sent.per_variant.items()
    }
    report: dict[str, Any] = {}

    def counted() -> bool:
        nonlocal report
        report = stack.serve.client.get(f"/experiments/{name}/report", headers=ADMIN).json()
        have = {
            row["variant"]: {
                "impressions": row["impressions"],
                "view": row["metrics"]["click_through"]["count"],
                "booking": row["metrics"]["booking_rate"]["count"],
            }
            for row in report["variants"]
        }
        return have == wanted

    wait_until(counted, 180, f"every impression and outcome of {name} attributed")
    return report


def stop(stack: Stack, name: str) -> None:
    response = stack.serve.client.post(f"/experiments/{name}/stop", headers=ADMIN)
    assert response.status_code == 200, response.text
    assert response.json()["status"] == "stopped"


def test_a_truly_better_variant_wins_with_an_interval_above_zero(stack: Stack) -> None:
    experiment = create(
        stack,
        {
            "name": "profile-vs-trending",
            "variants": [{"name": "control", "strategy": "trending"}, {"name": "b"}],
            "split": [50, 50],
            "primary_metric": "view",
        },
    )
    assert experiment["code"] >= 1
    probes = wait_until_served(stack, "profile-vs-trending")
    sent = simulate_experiment(
        stack.settings,
        "profile-vs-trending",
        f"http://127.0.0.1:{stack.serve.port}",
        users=USERS,
        requests_per_user=3,
        seed=1,
    )
    assert sent.outside == 0
    assert sent.requests == 3 * USERS
    report = report_when_attributed(stack, "profile-vs-trending", sent, probes)

    control, b = report["variants"]
    assert control["users"] + b["users"] == USERS + 1  # and the probe
    assert not report["sample_ratio"]["mismatch"]
    lift = b["metrics"]["click_through"]["relative_to_control"]
    assert lift["low"] > 0, report
    assert report["verdict"].startswith("b views "), report["verdict"]
    assert "more than control" in report["verdict"]
    # Attribution by position: the first position is viewed more than the tenth.
    days = report["days"]
    first = sum(v.get("view:1", 0) for day in days.values() for v in day.values())
    tenth = sum(v.get("view:10", 0) for day in days.values() for v in day.values())
    assert first > tenth

    # The CLI prints the same verdict from Redis.
    printed = subprocess.run(
        [sys.executable, "-m", "eventrec.cli", "experiment", "report", "profile-vs-trending"],
        env=settings_env(stack.settings),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    assert f"verdict: {report['verdict']}" in printed
    stop(stack, "profile-vs-trending")


def test_an_a_a_experiment_interval_includes_zero(stack: Stack) -> None:
    create(stack, {"name": "a-a", "variants": [{"name": "a1"}, {"name": "a2"}]})
    probes = wait_until_served(stack, "a-a")
    sent = simulate_experiment(
        stack.settings,
        "a-a",
        f"http://127.0.0.1:{stack.serve.port}",
        users=USERS,
        requests_per_user=3,
        seed=2,
    )
    report = report_when_attributed(stack, "a-a", sent, probes)
    difference = report["variants"][1]["metrics"]["click_through"]["relative_to_control"]
    assert difference["low"] < 0 < difference["high"], report
    assert not report["sample_ratio"]["mismatch"]
    stop(stack, "a-a")
    # Stopped: users are back on the current model, outside any experiment.
    wait_until(
        lambda: "experiment" not in stack.serve.recommend(stack.platform.users[0].user_id),
        30,
        "serving sees the stop",
    )


def test_experiments_need_the_admin_token_and_valid_variants(stack: Stack) -> None:
    client = stack.serve.client
    assert client.get("/experiments").status_code == 401
    assert client.get("/experiments", headers={"Authorization": "Bearer wrong"}).status_code == 403
    spec = {"name": "needs-a-model", "variants": [{"name": "a", "model_version": "current"},
                                                  {"name": "b"}]}  # fmt: skip
    refused = client.post("/experiments", json=spec, headers=ADMIN)
    assert refused.status_code == 422
    assert "no model version exists yet" in refused.json()["detail"]
    bad_split = {"name": "x", "variants": [{"name": "a"}, {"name": "b"}], "split": [1]}
    assert client.post("/experiments", json=bad_split, headers=ADMIN).status_code == 422
    assert client.get("/experiments/nope", headers=ADMIN).status_code == 404
    names = [e["name"] for e in client.get("/experiments", headers=ADMIN).json()["experiments"]]
    assert "needs-a-model" not in names


def test_every_response_reaches_the_impressions_topic(stack: Stack) -> None:
    client = stack.serve.client
    before = client.get("/impressions/stats").json()
    for i in range(50):
        stack.serve.recommend(stack.platform.users[i].user_id)

    def delivered() -> bool:
        stats = client.get("/impressions/stats").json()
        return stats["sent"] == stats["offered"]

    wait_until(delivered, 30, "every impression acknowledged by the broker")
    stats = client.get("/impressions/stats").json()
    assert stats["offered"] - before["offered"] == 50
    assert stats["dropped"] == 0
    assert stats["failed"] == 0

    # Every impression this worker sent is counted once: in an experiment's report or,
    # for the rest (these 50 among them), as traffic outside experiments.
    def counted() -> int:
        days = client.get("/attribution", headers=ADMIN).json()["days"]
        total = sum(day.get("impressions", 0) for day in days.values())
        for experiment in client.get("/experiments", headers=ADMIN).json()["experiments"]:
            name = experiment["name"]
            report = client.get(f"/experiments/{name}/report", headers=ADMIN).json()
            total += sum(row["impressions"] for row in report["variants"])
        return total

    wait_until(lambda: counted() == stats["sent"], 60, "every impression counted once")
    assert client.get("/attribution").status_code == 401


def test_variants_keep_their_model_versions(stack: Stack, tmp_path: Path) -> None:
    """`current` is fixed at creation; a later switch changes only users outside."""
    trainer_once(stack.settings)
    store = Store(connect(stack.settings.redis_url), stack.settings.key_prefix)
    try:
        first = current_version(store)
        assert first is not None
        export_version(store, first, tmp_path / "copy")
        second = import_version(store, tmp_path / "copy")
        create(
            stack,
            {
                "name": "versions",
                "variants": [
                    {"name": "control", "model_version": "current"},
                    {"name": "b", "model_version": second},
                ],
                "traffic": 0.5,
            },
        )
        activate_version(store, import_version(store, tmp_path / "copy"))
        third = current_version(store)
    finally:
        store.client.close()
    assert len({first, second, third}) == 3
    wanted = {"control": first, "b": second, None: third}
    users = [u.user_id for u in stack.platform.users[:200]]

    def served() -> dict[str | None, set[str]]:
        seen: dict[str | None, set[str]] = {}
        for user in users:
            body = stack.serve.recommend(user)
            variant = (body.get("experiment") or {}).get("variant")
            seen.setdefault(variant, set()).add(body["model_version"])
        return seen

    wait_until(
        lambda: served() == {k: {v} for k, v in wanted.items()}, 60, "each group on its version"
    )
    stop(stack, "versions")
