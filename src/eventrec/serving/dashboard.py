"""What ``/dashboard`` shows, as JSON: model versions and the gate's decisions, consumer
lag and rates, dead letters by reason, the trending list, running experiments.

Model versions, trainer cycles, the trending list and the experiments' reports are read
from Redis on request.
Lag, rates and dead letters come from an :class:`IngestionSampler` thread that, every
``EVENTREC_DASHBOARD_SAMPLE_SECONDS``, reads the consumer's stored positions and counters
from Redis and the partitions' end offsets from Kafka, and reads the dead-letter topic's
new messages (the reason is in their headers). It keeps the last hour of samples in
memory; long-term history is Prometheus' job.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from itertools import pairwise
from typing import Any

from kafka import KafkaConsumer, TopicPartition
from kafka.errors import KafkaError

from eventrec.config import Settings
from eventrec.experiments.report import variant_counts
from eventrec.model.abtest import CONFIDENCE, experiment_report
from eventrec.schemas.deadletter import HEADER_PREFIX
from eventrec.schemas.impressions import Experiment
from eventrec.store.attribution import AttributionStore
from eventrec.store.client import REDIS_ERRORS
from eventrec.store.experiments import ExperimentStore
from eventrec.store.history import trainer_history
from eventrec.store.store import Store
from eventrec.store.versions import list_versions, read_trending
from eventrec.telemetry import dead_letter_reason

log = logging.getLogger("eventrec.serving")

HISTORY_SECONDS = 3600.0
REASON_HEADER = HEADER_PREFIX + "reason"


def _figure(metrics: dict[str, Any], name: str) -> float | None:
    value = metrics.get(name)
    return float(value) if isinstance(value, int | float) else None


def models_view(store: Store) -> dict[str, Any]:
    """Stored versions with their validation figures, and the trainer's recent cycles."""
    versions = []
    for metadata in list_versions(store):
        metrics = metadata.get("metrics", {})
        versions.append(
            {
                "version": metadata.get("version"),
                "trained_at": metadata.get("trained_at"),
                "current": bool(metadata.get("current")),
                "gated": metadata.get("gated"),
                "gate": metadata.get("gate"),
                "error": metadata.get("error"),
                "interactions": metadata.get("data", {}).get("interactions"),
                "validation_ndcg": _figure(metrics, "validation_ndcg@10"),
                "popularity_ndcg": _figure(metrics, "popularity_validation_ndcg@10"),
                "trending_ndcg": _figure(metrics, "trending_validation_ndcg@10"),
                "precision": _figure(metrics, "precision@10"),
                "recall": _figure(metrics, "recall@10"),
            }
        )
    cycles = []
    for status in trainer_history(store, limit=50):
        metrics = status.get("metrics") or {}
        cycles.append(
            {
                "at": status.get("at"),
                "outcome": status.get("outcome"),
                "reason": status.get("reason"),
                "version": status.get("version"),
                "seconds": status.get("seconds"),
                "validation_ndcg": _figure(metrics, "validation_ndcg@10"),
                "popularity_ndcg": _figure(metrics, "popularity_validation_ndcg@10"),
            }
        )
    return {"versions": versions, "cycles": cycles}


def trending_view(store: Store, topic_events: str, limit: int = 10) -> dict[str, Any]:
    """The trainer's trending list, best first, with each event's title and city."""
    trending = read_trending(store)
    if trending is None:
        return {"computed_at": None, "events": []}
    event_ids = trending["event_ids"][:limit]
    documents = store.entity_documents("events", topic_events)
    events = []
    for event_id, score in zip(event_ids, trending["scores"], strict=False):
        raw = documents.get(event_id)
        document = json.loads(raw) if raw else {}
        events.append(
            {
                "event_id": event_id,
                "score": score,
                "title": document.get("title", event_id),
                "city": document.get("city"),
                "category": document.get("category"),
            }
        )
    return {"computed_at": trending.get("computed_at"), "events": events}


def experiment_summary(experiment: Experiment, statistics: dict[str, Any]) -> dict[str, Any]:
    """What the dashboard shows of a running experiment: its definition, and from its
    statistics (``model.abtest.experiment_report``) each variant's users and rates with
    the difference to the control and its interval, the sample ratio check, the verdict."""
    variants = {variant.name: variant for variant in experiment.variants}
    return {
        "name": experiment.name,
        "created_at": experiment.created_at.isoformat(),
        "traffic": experiment.traffic,
        "control": statistics["control"],
        "primary_metric": statistics["primary_metric"],
        "variants": [
            {
                "variant": row["variant"],
                "model_version": variants[row["variant"]].model_version,
                "strategy": variants[row["variant"]].strategy,
                "users": row["users"],
                "impressions": row["impressions"],
                "metrics": row["metrics"],
            }
            for row in statistics["variants"]
        ],
        "sample_ratio": statistics["sample_ratio"],
        "verdict": statistics["verdict"],
    }


def experiments_view(store: Store, topic_impressions: str) -> dict[str, Any]:
    """Every running A/B experiment with the statistics of its report (the counts per
    day that ``/experiments/{name}/report`` adds are left out)."""
    experiments = ExperimentStore(store.client, store.keys.prefix).all()
    attribution = AttributionStore(store.client, store.keys.prefix)
    running = []
    for experiment in experiments:
        if experiment.status != "running":
            continue
        statistics = experiment_report(
            variant_counts(attribution, topic_impressions, experiment),
            experiment.weights,
            primary=experiment.primary_metric,
        )
        running.append(experiment_summary(experiment, statistics))
    return {
        "confidence": CONFIDENCE,
        "experiments": running,
        "stopped": sum(experiment.status == "stopped" for experiment in experiments),
    }


class CostBoundedView:
    """A view recomputed once ``factor`` times its last computation's duration has passed:
    a cheap one is always fresh, an expensive one (an experiment with millions of users)
    keeps at most a ``1 / factor`` share of a thread and of Redis busy however many
    dashboards are open."""

    def __init__(
        self,
        compute: Callable[[], dict[str, Any]],
        factor: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._compute = compute
        self.factor = factor
        self._clock = clock
        self._lock = threading.Lock()
        self._value: dict[str, Any] | None = None
        self._fresh_until = 0.0

    def get(self) -> dict[str, Any]:
        with self._lock:
            started = self._clock()
            if self._value is None or started >= self._fresh_until:
                self._value = self._compute()
                finished = self._clock()
                self._fresh_until = finished + self.factor * (finished - started)
            return self._value


class IngestionSampler:
    """Samples consumer progress and lag, and counts dead letters by reason, on a thread."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.interval = settings.dashboard_sample_seconds
        self._samples: deque[dict[str, Any]] = deque(
            maxlen=max(2, int(HISTORY_SECONDS / self.interval))
        )
        self._reasons: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="dashboard-sampler", daemon=True)
        self.error: str | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.ident is not None:
            self._thread.join(timeout=10)

    def view(self) -> dict[str, Any]:
        """Samples (lag per partition, cumulative counts) and rates between them."""
        with self._lock:
            samples = list(self._samples)
            reasons = dict(self._reasons.most_common())
        rates = []
        for before, after in pairwise(samples):
            seconds = after["at"] - before["at"]
            if seconds <= 0:
                continue
            rates.append(
                {
                    "at": after["at"],
                    **{
                        f"{name}_per_second": max(0, after[name] - before[name]) / seconds
                        for name in ("applied", "deduplicated", "dead_lettered")
                    },
                }
            )
        return {
            "topic": self.settings.topic_interactions,
            "interval_seconds": self.interval,
            "samples": samples,
            "rates": rates,
            "dead_letters": reasons,
            "error": self.error,
        }

    def _run(self) -> None:
        consumer: KafkaConsumer | None = None
        try:
            while True:
                try:
                    if consumer is None:
                        consumer = self._connect()
                    self._sample(consumer)
                    self.error = None
                except (KafkaError, *REDIS_ERRORS, OSError) as exc:
                    if self.error is None:
                        log.warning("dashboard: cannot sample the consumer's progress: %s", exc)
                    self.error = str(exc)
                    if consumer is not None:
                        consumer.close()
                        consumer = None
                if self._stop.wait(self.interval):
                    return
        finally:
            if consumer is not None:
                consumer.close()

    def _connect(self) -> KafkaConsumer:
        consumer = KafkaConsumer(
            bootstrap_servers=self.settings.bootstrap_servers,
            client_id="eventrec-dashboard",
            group_id=None,
            enable_auto_commit=False,
        )
        dlq = self.settings.topic_dlq
        partitions = [TopicPartition(dlq, p) for p in sorted(consumer.partitions_for_topic(dlq))]
        consumer.assign(partitions)
        consumer.seek_to_beginning(*partitions)
        with self._lock:
            self._reasons.clear()
        return consumer

    def _sample(self, consumer: KafkaConsumer) -> None:
        topic = self.settings.topic_interactions
        numbers = sorted(consumer.partitions_for_topic(topic))
        partitions = [TopicPartition(topic, p) for p in numbers]
        ends = consumer.end_offsets(partitions)
        starts = consumer.beginning_offsets(partitions)
        stored = self.store.stored_offsets(topic, numbers)
        totals: Counter[str] = Counter()
        for number in numbers:
            totals.update(self.store.stats(topic, number))
        lag = {}
        for tp in partitions:
            position = stored[tp.partition]
            applied_to = starts[tp] if position is None else position
            lag[str(tp.partition)] = max(0, int(ends[tp]) - int(applied_to))
        reasons = self._read_dead_letters(consumer)
        sample = {
            "at": time.time(),
            "lag": lag,
            "applied": totals["processed"],
            "deduplicated": totals["deduplicated"],
            "dead_lettered": totals["dead_lettered"],
        }
        with self._lock:
            self._reasons.update(reasons)
            self._samples.append(sample)

    def _read_dead_letters(self, consumer: KafkaConsumer) -> Counter[str]:
        reasons: Counter[str] = Counter()
        if not consumer.assignment():
            return reasons
        while True:
            polled = consumer.poll(timeout_ms=200, max_records=5000)
            if not polled:
                return reasons
            for records in polled.values():
                for record in records:
                    headers = dict(record.headers or ())
                    raw = headers.get(REASON_HEADER, b"")
                    reasons[dead_letter_reason(raw.decode("utf-8", "replace"))] += 1
