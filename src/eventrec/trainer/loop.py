"""`eventrec trainer`: refit on a schedule and on demand, publish versions, keep trending fresh.

One cycle: take the lock → snapshot → trending list → fit (search, refit, metrics) →
gate → write the version → switch ``current`` (fenced by the lock) → prune. Between
cycles the trainer blocks on the request queue until the next scheduled fit.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from types import FrameType
from typing import Any

from eventrec.config import Settings
from eventrec.model.errors import ModelFitError
from eventrec.store import Snapshot, Store, connect
from eventrec.store.client import REDIS_ERRORS
from eventrec.store.history import record_trainer_status
from eventrec.store.versions import (
    ModelVersionError,
    activate_version,
    current_version,
    data_marker,
    load_version,
    mark_training,
    pinned_version,
    prune_versions,
    read_metadata,
    write_trending,
    write_version,
)
from eventrec.telemetry import MetricsServer
from eventrec.trainer import metrics as trainer_metrics
from eventrec.trainer.fit import FitOptions, fit_version, trending_scores
from eventrec.trainer.lock import TrainingLock

__all__ = ["CycleOutcome", "Trainer", "TrainerStopped", "run_trainer"]

# Redis down, a version that cannot be written, a snapshot that kept racing the consumer.
CYCLE_ERRORS: tuple[type[Exception], ...] = (*REDIS_ERRORS, ModelVersionError, ValueError)

log = logging.getLogger("eventrec.trainer")

PROGRESS_SECONDS = 10.0
POLL_SECONDS = 1.0
SNAPSHOT_ATTEMPTS = 3
# After Redis errors the loop retries sooner than the schedule, but not in a tight loop.
RETRY_SECONDS = 30.0


class TrainerStopped(BaseException):
    """SIGTERM during a cycle: abandon it (the current version is never half-written)."""


@dataclass(frozen=True)
class CycleOutcome:
    """What one cycle did: ``published``, ``stored`` (a version is pinned), ``gated``,
    ``too_little_data``, ``no_model``, ``failed``, ``lock_busy`` or ``stopped``."""

    outcome: str
    reason: str
    version: str | None = None
    seconds: float = 0.0


def _iso_now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


class _Progress:
    """Logs "still fitting" every few seconds from a side thread while a long step runs."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._done = threading.Event()
        self._started = time.monotonic()
        self._thread = threading.Thread(target=self._run, name="trainer-progress", daemon=True)

    def __enter__(self) -> _Progress:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=1)

    def _run(self) -> None:
        while not self._done.wait(PROGRESS_SECONDS):
            elapsed = time.monotonic() - self._started
            log.info(
                "%s: %.0f s so far",
                self.what,
                elapsed,
                extra={"event": "progress", "step": self.what, "elapsed_s": round(elapsed, 1)},
            )


class Trainer:
    """Fits and publishes model versions; one instance per `eventrec trainer` process."""

    def __init__(self, settings: Settings, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or Store(connect(settings.redis_url), settings.key_prefix)
        self.keys = self.store.keys
        self.lock = TrainingLock(
            self.store.client, self.keys.train_lock, settings.train_lock_seconds
        )
        self.options = FitOptions(
            n_jobs=settings.train_n_jobs,
            search_users=settings.train_search_users,
            max_validation_users=settings.train_validation_users,
            max_factor_cells=settings.train_max_factor_cells,
            trending_half_life_days=settings.trending_half_life_days,
            validation_days=settings.train_validation_days,
            min_records=settings.min_interactions_personal,
            hide_viewed=settings.hide_viewed,
        )
        self.stopping = threading.Event()
        self._in_cycle = False

    # -- signals -------------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self.stopping.set()
        log.info("stopping on signal %d", signum, extra={"event": "stopping"})
        if self._in_cycle:
            raise TrainerStopped

    # -- one cycle -----------------------------------------------------------------------

    def _status(self, outcome: CycleOutcome, **extra: Any) -> None:
        status = {
            "outcome": outcome.outcome,
            "reason": outcome.reason,
            "version": outcome.version,
            "seconds": round(outcome.seconds, 3),
            "at": _iso_now(),
            **extra,
        }
        record_trainer_status(self.store, status)

    def _snapshot(self) -> Snapshot:
        """The store's snapshot, retried when a row outran the id-map sizes read before it.

        ``Store.snapshot`` reads the map sizes, then the rows: an event or user the consumer
        assigned in between fails the log's index check; a second read sees both.
        """
        for attempt in range(SNAPSHOT_ATTEMPTS):
            try:
                return self.store.snapshot(self.settings.topic_interactions)
            except ValueError as exc:
                if attempt == SNAPSHOT_ATTEMPTS - 1:
                    raise
                log.info("snapshot raced the consumer (%s); reading again", exc)
        raise AssertionError("unreachable")

    def cycle(self, trigger: str = "schedule", wait_for_lock: float = 0.0) -> CycleOutcome:
        """Run one cycle under the lock; ``lock_busy`` when another trainer holds it."""
        if not self.lock.acquire(wait_seconds=0.0):
            log.info(
                "training lock busy: another trainer is fitting",
                extra={"event": "lock_busy", "holder": self.lock.holder(), "trigger": trigger},
            )
            if wait_for_lock <= 0 or not self.lock.acquire(wait_for_lock, stop=self.stopping):
                return CycleOutcome("lock_busy", "another trainer holds the training lock")
        self._in_cycle = True
        try:
            if self.stopping.is_set():
                raise TrainerStopped
            outcome = self._locked_cycle(trigger)
        except TrainerStopped:
            outcome = CycleOutcome("stopped", "stopped by a signal; the fit was abandoned")
            log.info(outcome.reason, extra={"event": "fit_abandoned"})
        finally:
            self._in_cycle = False
            self.lock.release()
        trainer_metrics.cycle_finished(outcome.outcome, outcome.seconds, outcome.version)
        return outcome

    def _locked_cycle(self, trigger: str) -> CycleOutcome:
        started = time.perf_counter()
        settings, store = self.settings, self.store
        # Requests queued so far are answered by this cycle's snapshot; later ones for the
        # same data coalesce into it (the marker is dropped when the cycle ends).
        store.client.delete(self.keys.train_requests)
        mark_training(store, data_marker(store, settings.topic_interactions))
        try:
            return self._fit_and_publish(trigger, started)
        finally:
            mark_training(store, None)

    def _fit_and_publish(self, trigger: str, started: float) -> CycleOutcome:
        settings, store = self.settings, self.store
        fit_started_at = _iso_now()
        log.info("training cycle started", extra={"event": "cycle_started", "trigger": trigger})
        snapshot_started = time.perf_counter()
        snapshot = self._snapshot()
        interaction_log, event_ids = snapshot.log, snapshot.event_ids
        snapshot_seconds = time.perf_counter() - snapshot_started
        trainer_metrics.PHASE_SECONDS.labels(phase="snapshot").observe(snapshot_seconds)
        log.info(
            "snapshot: %d interactions, %d users, %d events in %.2f s",
            len(interaction_log),
            interaction_log.n_users,
            interaction_log.n_events,
            snapshot_seconds,
            extra={"event": "snapshot", "interactions": len(interaction_log)},
        )
        trending = trending_scores(
            interaction_log, now=snapshot.taken_at, half_life_days=settings.trending_half_life_days
        )
        write_trending(
            store,
            event_ids,
            trending,
            {"computed_at": _iso_now(), "half_life_days": settings.trending_half_life_days},
        )
        if len(interaction_log) < settings.train_min_interactions:
            outcome = CycleOutcome(
                "too_little_data",
                f"{len(interaction_log)} interactions, fewer than "
                f"EVENTREC_TRAIN_MIN_INTERACTIONS={settings.train_min_interactions}: "
                f"no model fitted (trending list updated)",
                seconds=time.perf_counter() - started,
            )
            log.warning(outcome.reason, extra={"event": "too_little_data"})
            self._status(outcome)
            return outcome
        documents = store.entity_documents("events", settings.topic_events)
        profiles = store.entity_documents("users", settings.topic_users)
        log.info(
            "fit started",
            extra={"event": "fit_started", "interactions": len(interaction_log)},
        )
        try:
            with _Progress("fitting"):
                fitted = fit_version(
                    interaction_log,
                    event_ids,
                    documents,
                    self.options,
                    self._current_metadata(),
                    now=snapshot.taken_at,
                    user_ids=snapshot.user_ids,
                    profiles=profiles,
                )
        except ModelFitError as exc:
            outcome = CycleOutcome(
                "no_model", f"no model fitted: {exc}", seconds=time.perf_counter() - started
            )
            log.warning(outcome.reason, extra={"event": "fit_failed"})
            self._status(outcome)
            return outcome
        trainer_metrics.fit_finished(fitted.metadata)
        metrics = fitted.metadata["metrics"]
        if not fitted.publish:
            outcome = CycleOutcome("gated", fitted.reason, seconds=time.perf_counter() - started)
            log.warning(
                "model not published: %s",
                fitted.reason,
                extra={"event": "gated", "metrics": metrics, "params": fitted.metadata["params"]},
            )
            self._status(outcome, metrics=metrics)
            return outcome
        fitted.metadata["trigger"] = trigger
        fitted.metadata["timings"].update(
            {
                "snapshot": round(snapshot_seconds, 3),
                "fit_started_at": fit_started_at,
                "fit_finished_at": _iso_now(),
            }
        )
        publish_started = time.perf_counter()
        version = write_version(store, fitted.arrays, fitted.metadata)
        try:
            # Serving's own checks first: a version serving would refuse never goes live.
            load_version(store, version=version)
            switched = activate_version(store, version, lock_token=self.lock.token)
        except ModelVersionError as exc:
            outcome = CycleOutcome("failed", str(exc), version, time.perf_counter() - started)
            log.error(outcome.reason, extra={"event": "publish_failed", "version": version})
            self._status(outcome)
            return outcome
        if not switched:
            outcome = CycleOutcome(
                "stored",
                f"version {version} stored, not current: version {pinned_version(store)} is "
                f"pinned (`eventrec model unpin` lets new versions go live)",
                version,
                time.perf_counter() - started,
            )
            log.warning(
                outcome.reason, extra={"event": "version_stored_pinned", "version": version}
            )
            self._status(outcome, metrics=metrics)
            return outcome
        pruned = prune_versions(store, settings.model_keep_versions)
        trainer_metrics.PHASE_SECONDS.labels(phase="publish").observe(
            time.perf_counter() - publish_started
        )
        seconds = time.perf_counter() - started
        outcome = CycleOutcome("published", fitted.reason, version, seconds)
        log.info(
            "version %s published: NDCG@10 %.4f vs popularity %.4f",
            version,
            metrics["validation_ndcg@10"] or float("nan"),
            metrics["popularity_validation_ndcg@10"] or float("nan"),
            extra={
                "event": "version_published",
                "version": version,
                "gated": fitted.metadata["gated"],
                "metrics": metrics,
                "params": fitted.metadata["params"],
                "pruned": pruned,
                "publish_s": round(time.perf_counter() - publish_started, 3),
                "cycle_s": round(seconds, 3),
            },
        )
        self._status(outcome, metrics=metrics)
        return outcome

    def _current_metadata(self) -> dict[str, Any] | None:
        """The current version's metadata, for the gate's comparison (None: none)."""
        version = current_version(self.store)
        try:
            return read_metadata(self.store, version) if version else None
        except ModelVersionError:
            return None  # an unreadable current version gates like none

    # -- the loop ------------------------------------------------------------------------

    def run_once(self) -> CycleOutcome:
        """One cycle, waiting for another trainer's lock rather than skipping."""
        return self.cycle("once", wait_for_lock=max(self.settings.train_lock_seconds * 10, 600))

    def run_forever(self) -> None:
        """Fit now, then every interval and whenever a request is queued, until stopped."""
        interval = self.settings.train_interval_seconds
        next_fit = time.monotonic()
        trigger = "start"
        while not self.stopping.is_set():
            wait = next_fit - time.monotonic()
            if wait > 0:
                try:
                    request = self.store.client.blpop(
                        [self.keys.train_requests], timeout=min(wait, POLL_SECONDS)
                    )
                except REDIS_ERRORS as exc:
                    log.warning("cannot read training requests: %s", exc)
                    time.sleep(POLL_SECONDS)
                    continue
                if request is None:
                    continue
                trigger = "request"
            try:
                self.cycle(trigger)
            except CYCLE_ERRORS as exc:
                # Redis down, a version that cannot be written, a snapshot that kept racing
                # the consumer: this cycle is lost, the trainer is not.
                log.error(
                    "training cycle failed: %s: %s; retrying in %.0f s",
                    type(exc).__name__,
                    exc,
                    min(interval, RETRY_SECONDS),
                    extra={"event": "cycle_failed"},
                )
                trigger = "retry"
                next_fit = time.monotonic() + min(interval, RETRY_SECONDS)
                continue
            trigger = "schedule"
            next_fit = time.monotonic() + interval


def run_trainer(settings: Settings, once: bool = False) -> int:
    """Entry point of `eventrec trainer`; 0 on a clean stop (SIGTERM included)."""
    trainer = Trainer(settings)
    trainer.install_signal_handlers()
    log.info(
        "trainer started",
        extra={
            "event": "trainer_started",
            "once": once,
            "interval_s": settings.train_interval_seconds,
        },
    )
    if once:
        outcome = trainer.run_once()
        return 0 if outcome.outcome not in ("failed", "lock_busy") else 1
    server = None
    if settings.trainer_ops_port:
        server = MetricsServer(settings.ops_host, settings.trainer_ops_port)
        log.info("trainer metrics on http://%s:%d/metrics", settings.ops_host, server.port)
    try:
        trainer.run_forever()
    finally:
        if server is not None:
            server.close()
    return 0
