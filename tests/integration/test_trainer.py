"""The trainer end to end: Kafka → consumer → Redis → `eventrec trainer` → model versions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import redis

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.store import Store, connect
from eventrec.store.versions import (
    ModelVersionError,
    current_version,
    list_versions,
    load_version,
    pinned_version,
    read_trending,
    request_training,
    unpin_version,
    write_version,
)
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import generate
from eventrec.synth.publish import publish
from eventrec.topics import create_topics
from eventrec.trainer.lock import TrainingLock
from tests.integration.conftest import ON_SERVER_AND_CLUSTER, unique_settings
from tests.integration.ingest_helpers import (
    ConsumerProcess,
    Stream,
    applied_offsets,
    produce,
    settings_env,
    wait_until,
)

pytestmark = pytest.mark.integration


def eventrec(
    settings: Settings, *args: str, timeout: float = 180
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "eventrec.cli", *args],
        env=settings_env(settings),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def start_trainer(settings: Settings, log_path: Path, *args: str) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "eventrec.cli", "trainer", *args],
            env=settings_env(settings),
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def clean(settings: Settings) -> None:
    client = connect(settings.redis_url)  # on a cluster, SCAN visits every master
    keys = list(client.scan_iter(match=f"{settings.key_prefix}:*", count=1000))
    for start in range(0, len(keys), 1000):
        client.delete(*keys[start : start + 1000])
    client.close()


def ingest(services: LocalServices, redis_url: str, log_dir: Path) -> Settings:
    """A synthetic platform published to Kafka and applied to Redis by the real consumer."""
    settings = unique_settings(services, redis_url=redis_url)
    create_topics(settings)
    platform = generate(SynthConfig(n_users=600, n_events=150, n_interactions=20_000, seed=5))
    counts = publish(platform, settings, progress=False)
    consumer = ConsumerProcess(settings, log_dir / "consumer.log")
    consumer.start()
    try:
        wait_until(
            lambda: applied_offsets(settings) == counts.interactions, 180, "every interaction"
        )
        store = Store(connect(settings.redis_url), settings.key_prefix)
        wait_until(
            lambda: len(store.entity_documents("events", settings.topic_events)) == counts.events,
            60,
            "the catalog",
        )
        store.client.close()
    finally:
        assert consumer.stop() == 0, consumer.log()[-3000:]
    return settings


@pytest.fixture(scope="module")
def ingests(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Settings]]:
    """One ingested platform per Redis backend, made on first use, kept for the module."""
    made: dict[str, Settings] = {}
    yield made
    for settings in made.values():
        clean(settings)


@pytest.fixture
def ingested(
    services: LocalServices,
    redis_url: str,
    redis_backend: str,
    ingests: dict[str, Settings],
    tmp_path_factory: pytest.TempPathFactory,
) -> Settings:
    """The platform on this test's backend (the single server unless it asks for both)."""
    if redis_backend not in ingests:
        ingests[redis_backend] = ingest(
            services, redis_url, tmp_path_factory.mktemp(f"consumer-{redis_backend}")
        )
    return ingests[redis_backend]


@pytest.fixture
def store(ingested: Settings) -> Iterator[Store]:
    client = connect(ingested.redis_url)
    yield Store(client, ingested.key_prefix)
    client.close()


def fit_once(settings: Settings) -> str:
    """Run `eventrec trainer --once`; the version it made current."""
    before = current_version(connect(settings.redis_url), settings.key_prefix)
    done = eventrec(settings, "trainer", "--once")
    assert done.returncode == 0, done.stderr[-3000:]
    after = current_version(connect(settings.redis_url), settings.key_prefix)
    assert after is not None, done.stderr[-3000:]
    assert after != before, done.stderr[-3000:]
    return after


@ON_SERVER_AND_CLUSTER
def test_fit_refit_and_roll_back(ingested: Settings, store: Store) -> None:
    first = fit_once(ingested)
    metadata = load_version(store).metadata
    assert metadata["version"] == first
    metrics = metadata["metrics"]
    assert metrics["validation_ndcg@10"] > metrics["popularity_validation_ndcg@10"] > 0
    assert metrics["precision@10"] > 0
    assert metrics["recall@10"] > 0
    assert metrics["rmse"] is not None
    assert metadata["gated"] is True
    assert metadata["data"]["interactions"] > 15_000
    assert (
        metadata["data"]["events"]
        == len(store.snapshot(ingested.topic_interactions).event_ids)
        > 100
    )
    assert metadata["checksum"].startswith("sha256:")
    assert {"factors", "grid", "winner"} <= set(metadata["search"])
    trending = read_trending(store)
    assert trending is not None
    assert len(trending["event_ids"]) > 50

    second = fit_once(ingested)
    assert [v["version"] for v in list_versions(store)][-2:] == [first, second]

    pubsub = store.client.pubsub()
    pubsub.subscribe(store.keys.model_channel)
    assert pubsub.get_message(timeout=2)["type"] == "subscribe"
    switches = int(store.client.get(store.keys.model_switches))
    done = eventrec(ingested, "model", "activate", first)
    assert done.returncode == 0, done.stderr
    assert current_version(store) == first
    assert load_version(store).version == first
    announced = pubsub.get_message(timeout=1)
    assert announced is not None
    assert announced["data"] == first.encode()
    assert int(store.client.get(store.keys.model_switches)) == switches + 1
    pubsub.close()

    listing = eventrec(ingested, "model", "list")
    assert f"* {first}" in listing.stdout
    shown = eventrec(ingested, "model", "show", second)
    assert json.loads(shown.stdout)["version"] == second
    blend = json.loads(shown.stdout)["hybrid"]["blend"]
    assert sum(blend["shares"].values()) == pytest.approx(1.0)
    for name in blend["features"]:  # each feature's weight and share, for people
        assert f"  {name}" in shown.stderr


@ON_SERVER_AND_CLUSTER
@pytest.mark.parametrize("damage", ["wrong byte length", "NaN"])
def test_a_corrupted_version_is_refused_at_load(
    ingested: Settings, store: Store, damage: str
) -> None:
    if current_version(store) is None:
        fit_once(ingested)
    good = current_version(store)
    loaded = load_version(store)
    metadata = {k: v for k, v in loaded.metadata.items() if k not in ("arrays", "checksum")}
    broken = write_version(store, loaded.arrays(), metadata)
    assert load_version(store, version=broken).version == broken
    factors = loaded.item_factors.copy()
    if damage == "NaN":
        factors[3, 1] = np.nan
        data = factors.tobytes()
        expected = "non-finite"
    else:
        data = factors.tobytes()[:-4]
        expected = "bytes"
    store.client.hset(store.keys.model_arrays(broken), "item_factors", data)

    with pytest.raises(ModelVersionError, match=f"model version {broken}: array item_factors"):
        load_version(store, version=broken)
    with pytest.raises(ModelVersionError, match=expected):
        load_version(store, version=broken)
    refused = eventrec(ingested, "model", "activate", broken)
    assert refused.returncode == 1
    assert broken in refused.stderr
    assert current_version(store) == good


@ON_SERVER_AND_CLUSTER
def test_two_trainers_started_together_fit_one_at_a_time(
    ingested: Settings, store: Store, tmp_path: Path
) -> None:
    before = {v["version"] for v in list_versions(store)}
    # Hold the lock until both trainers are waiting for it, so they really race.
    holder = TrainingLock(store.client, store.keys.train_lock, ttl_seconds=30)
    assert holder.acquire()
    logs = [tmp_path / "first.log", tmp_path / "second.log"]
    trainers = [start_trainer(ingested, log, "--once") for log in logs]
    try:
        wait_until(
            lambda: all("training lock busy" in log.read_text() for log in logs),
            60,
            "both trainers waiting for the lock",
        )
    finally:
        holder.release()
    for trainer in trainers:
        assert trainer.wait(timeout=240) == 0, [log.read_text()[-2000:] for log in logs]
    made = [v for v in list_versions(store) if v["version"] not in before]
    assert len(made) == 2
    spans = sorted(
        (
            datetime.fromisoformat(v["timings"]["fit_started_at"]),
            datetime.fromisoformat(v["timings"]["fit_finished_at"]),
        )
        for v in made
    )
    assert spans[0][1] <= spans[1][0], spans


@ON_SERVER_AND_CLUSTER
def test_export_then_import_round_trips_a_version_exactly(
    ingested: Settings, store: Store, tmp_path: Path
) -> None:
    if current_version(store) is None:
        fit_once(ingested)
    original = load_version(store)
    exported = eventrec(ingested, "model", "export", original.version, str(tmp_path / "backup"))
    assert exported.returncode == 0, exported.stderr
    assert {p.name for p in (tmp_path / "backup").iterdir()} == {"arrays.npz", "metadata.json"}

    imported = eventrec(ingested, "model", "import", str(tmp_path / "backup"))
    assert imported.returncode == 0, imported.stderr
    copy_version = imported.stdout.split(" as ")[1].split()[0]
    assert copy_version != original.version
    assert current_version(store) == original.version  # not activated without --activate
    copy = load_version(store, version=copy_version)
    assert copy.metadata["checksum"] == original.metadata["checksum"]
    assert copy.metadata["imported_from"] == original.version
    assert copy.metadata["params"] == original.metadata["params"]
    for name, array in original.arrays().items():
        np.testing.assert_array_equal(np.asarray(copy.arrays()[name]), np.asarray(array))
    assert copy.event_ids == original.event_ids


def test_too_little_data_writes_trending_but_no_version(
    settings: Settings, redis_client: redis.Redis, tmp_path: Path
) -> None:
    messages = Stream(n_users=20, n_events=10, seed=3, invalid_fraction=0.0).take(200)
    produce(settings, settings.topic_interactions, messages)
    consumer = ConsumerProcess(settings, tmp_path / "consumer.log").start()
    try:
        wait_until(lambda: applied_offsets(settings) == len(messages), 120, "every interaction")
    finally:
        assert consumer.stop() == 0
    done = eventrec(settings, "trainer", "--once")
    assert done.returncode == 0, done.stderr
    assert "fewer than EVENTREC_TRAIN_MIN_INTERACTIONS=1000" in done.stderr
    store = Store(redis_client, settings.key_prefix)
    assert list_versions(store) == []
    trending = read_trending(store)
    assert trending is not None
    assert 0 < len(trending["event_ids"]) <= 10
    assert trending["scores"] == sorted(trending["scores"], reverse=True)
    with pytest.raises(ModelVersionError, match="no model version is current"):
        load_version(store)


def test_the_trainer_fits_on_request_and_stops_cleanly_on_sigterm(
    ingested: Settings, store: Store, tmp_path: Path
) -> None:
    settings = ingested.model_copy(update={"train_interval_seconds": 3600.0})
    sequence = int(store.client.get(store.keys.model_sequence) or 0)
    log = tmp_path / "trainer.log"
    trainer = start_trainer(settings, log)
    try:
        wait_until(
            lambda: int(store.client.get(store.keys.model_sequence) or 0) == sequence + 1,
            120,
            "the fit at start",
        )
        request_training(store, reason="test")
        wait_until(
            lambda: int(store.client.get(store.keys.model_sequence) or 0) == sequence + 2,
            120,
            "the requested fit",
        )
        time.sleep(0.5)
    finally:
        trainer.send_signal(signal.SIGTERM)
        code = trainer.wait(timeout=60)
    assert code == 0, log.read_text()[-3000:]
    events = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
    triggers = [e.get("trigger") for e in events if e.get("event") == "cycle_started"]
    assert triggers == ["start", "request"]
    published = [e for e in events if e.get("event") == "version_published"]
    assert len(published) == 2
    assert published[-1]["metrics"]["validation_ndcg@10"] > 0
    assert store.client.llen(store.keys.train_requests) == 0


def test_sigterm_during_a_fit_abandons_it_and_keeps_the_current_version(
    ingested: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventrec.trainer import loop

    if current_version(store) is None:
        fit_once(ingested)
    current = current_version(store)
    sequence = store.client.get(store.keys.model_sequence)

    def fit_interrupted(*args: object, **kwargs: object) -> None:
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(30)  # the handler raises long before this ends
        raise AssertionError("the fit was not interrupted")

    monkeypatch.setattr(loop, "fit_version", fit_interrupted)
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    trainer = loop.Trainer(ingested, store)
    trainer.install_signal_handlers()
    try:
        started = time.monotonic()
        outcome = trainer.cycle("test")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    assert outcome.outcome == "stopped"
    assert time.monotonic() - started < 20
    assert current_version(store) == current
    assert store.client.get(store.keys.model_sequence) == sequence
    assert store.client.get(store.keys.train_lock) is None


def test_run_forever_outlives_a_version_error_and_a_snapshot_error(
    ingested: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventrec.trainer import loop

    monkeypatch.setattr(loop, "RETRY_SECONDS", 0.05)
    trainer = loop.Trainer(ingested, store)
    failures = [
        ValueError("index 9 is out of range (the snapshot kept racing the consumer)"),
        ModelVersionError("model version v000099: arrays ['trending'] are missing"),
        ValueError("again"),
    ]
    calls: list[int] = []

    def snapshot() -> object:
        calls.append(1)
        if len(calls) == len(failures):
            trainer.stopping.set()
        raise failures[len(calls) - 1]

    monkeypatch.setattr(trainer, "_snapshot", snapshot)
    runner = threading.Thread(target=trainer.run_forever)
    runner.start()
    runner.join(timeout=60)
    assert not runner.is_alive()
    assert len(calls) == 3
    assert store.client.get(store.keys.train_lock) is None
    assert store.client.get(store.keys.train_running) is None


def test_a_version_serving_would_refuse_never_goes_live(
    ingested: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventrec.trainer import loop

    if current_version(store) is None:
        fit_once(ingested)
    current = current_version(store)
    real_fit = loop.fit_version

    def fit_without_content(*args: Any, **kwargs: Any) -> Any:
        fitted = real_fit(*args, **kwargs)
        del fitted.metadata["content"]  # writes fine, fails serving's load
        return fitted

    monkeypatch.setattr(loop, "fit_version", fit_without_content)
    outcome = loop.Trainer(ingested, store).cycle("test")
    assert outcome.outcome == "failed", outcome
    assert "incomplete metadata" in outcome.reason
    assert outcome.version is not None
    assert outcome.version in {v["version"] for v in list_versions(store)}
    assert current_version(store) == current


@ON_SERVER_AND_CLUSTER
def test_a_pin_holds_against_the_trainer_until_activate_moves_it_or_unpin(
    ingested: Settings, store: Store
) -> None:
    from eventrec.trainer import loop

    if current_version(store) is None:
        fit_once(ingested)
    pinned = current_version(store)
    assert pinned is not None
    done = eventrec(ingested, "model", "pin", pinned)
    assert done.returncode == 0, done.stderr
    try:
        trainer = loop.Trainer(ingested, store)
        stored = trainer.cycle("test")
        assert stored.outcome == "stored", stored
        assert stored.version is not None
        assert current_version(store) == pinned
        assert f"version {pinned} is pinned" in stored.reason

        # An explicit activation is obeyed and moves the pin.
        done = eventrec(ingested, "model", "activate", stored.version)
        assert done.returncode == 0, done.stderr
        assert current_version(store) == stored.version
        assert pinned_version(store) == stored.version
        listing = eventrec(ingested, "model", "list")
        assert f"pinned: {stored.version}" in listing.stdout

        done = eventrec(ingested, "model", "unpin")
        assert done.returncode == 0, done.stderr
        assert f"unpinned {stored.version}" in done.stdout
        published = trainer.cycle("test")
        assert published.outcome == "published", published
        assert current_version(store) == published.version != stored.version
    finally:
        unpin_version(store)


def test_requests_for_the_data_of_a_running_fit_are_coalesced(
    ingested: Settings, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    from eventrec.trainer import loop

    topic = ingested.topic_interactions
    store.client.delete(store.keys.train_requests)
    fitting, release = threading.Event(), threading.Event()
    real_fit = loop.fit_version

    def held_fit(*args: Any, **kwargs: Any) -> Any:
        fitting.set()
        assert release.wait(60)
        return real_fit(*args, **kwargs)

    monkeypatch.setattr(loop, "fit_version", held_fit)
    outcomes: list[loop.CycleOutcome] = []
    runner = threading.Thread(target=lambda: outcomes.append(loop.Trainer(ingested, store).cycle()))
    runner.start()
    partition = min(store.owner_partitions())
    offset = store.stored_offset(topic, partition)
    assert offset is not None
    try:
        assert fitting.wait(60)
        assert request_training(store, reason="same data", topic=topic) == (0, True)
        assert store.client.llen(store.keys.train_requests) == 0
        # New data since the running fit's snapshot: a fit is queued, once.
        assert store.reset_offset(topic, partition, offset, offset + 1)
        assert request_training(store, reason="new data", topic=topic) == (1, False)
        assert request_training(store, reason="new data", topic=topic) == (1, True)
    finally:
        store.reset_offset(topic, partition, offset + 1, offset)
        release.set()
        runner.join(timeout=120)
    assert [o.outcome for o in outcomes] == ["published"]
    # No fit runs now: a request is queued even for the data the last fit read.
    store.client.delete(store.keys.train_requests)
    assert request_training(store, reason="after", topic=topic) == (1, False)
    store.client.delete(store.keys.train_requests)
