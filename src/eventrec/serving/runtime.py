"""The resources of one serving process, in three parts with one job each.

:class:`Clients` are the connections (settings, key names, a sync store, an async
Redis); :class:`Caches` hold what was loaded from them (the current :class:`ServingState`
and the users' row locations); the :class:`ReloadWatcher` polls Redis and rebuilds the
state when a version or the catalog changed. :class:`Runtime` puts them together with the
request scorer; the routers reach it through ``serving.deps``.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import time
from typing import Any

from eventrec.config import Settings
from eventrec.schemas.impressions import Experiment
from eventrec.serving import metrics
from eventrec.serving.impressions import ImpressionSender
from eventrec.serving.rows import OwnedRows
from eventrec.serving.scoring import BatchScorer
from eventrec.serving.signals import read_users
from eventrec.serving.state import HybridState, ServingState, build_state, warm_compiled
from eventrec.store.client import UNAVAILABLE_ERRORS, connect_async
from eventrec.store.experiments import ExperimentStore
from eventrec.store.keys import Keys
from eventrec.store.store import Store, connect
from eventrec.store.versions import ModelVersionError, current_version

log = logging.getLogger("eventrec.serving")

# A variant's version that fails these is left out (logged); the others still load.
VARIANT_ERRORS: tuple[type[Exception], ...] = (ModelVersionError, *UNAVAILABLE_ERRORS)


class Clients:
    """Settings, key names, the two Redis clients of one serving process, and its row reads."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.store = Store(connect(settings.redis_url, retries=1), settings.key_prefix)
        # One immediate retry, fail fast: see connect_async.
        self.redis: Any = connect_async(settings.redis_url)
        self.rows = OwnedRows(self.redis, self.keys, settings.topic_interactions)

    async def close(self) -> None:
        await self.redis.aclose()
        self.store.client.close()


class Caches:
    """What serving loaded from Redis: the current state, refused versions, profile partitions."""

    def __init__(self, clients: Clients) -> None:
        self.clients = clients
        self.state: ServingState | None = None
        self.load_error: str | None = None
        # Versions that failed serving's checks, with the reason: never loaded again.
        self.refused: dict[str, str] = {}
        # Running experiments, and the state of each variant's own model version.
        self.experiments: list[Experiment] = []
        self.variant_states: dict[str, ServingState] = {}
        self.variant_errors: dict[str, str] = {}
        # Partitions of the users topic that hold profiles, and when they were read.
        self.profile_partitions: list[int] = []
        self.profile_partitions_at = -float("inf")
        # When the watcher last saw Redis and had what it saw loaded (monotonic).
        self.checked_at = time.monotonic()
        # The hybrid mark_touched last marked (kept, not its id: ids are reused).
        self._marked: HybridState | None = None
        self.watch_error: str | None = None

    def reload(self) -> bool:
        """Build a new state if the model version or the catalog changed; keep the old on error.

        A version that fails the checks is refused once: the state keeps the last checked
        version (catalog and trending still refresh) and the refusal is remembered.
        """
        store, settings = self.clients.store, self.clients.settings
        version: str | None = None
        try:
            version = current_version(store.client, store.keys.prefix)
            if version in self.refused:
                version = self.state.model_version if self.state is not None else None
            state = build_state(store, settings.topic_events, self.state, version)
        except ModelVersionError as exc:
            log.error("model version %s refused, serving the previous one: %s", version, exc)
            if version is not None:
                self.refused[version] = str(exc)
            self.load_error = str(exc)
            return False
        except UNAVAILABLE_ERRORS as exc:
            if self.load_error != "redis":
                log.warning("redis unavailable while reloading: %s", exc)
            self.load_error = "redis"
            return False
        previous = self.state
        self.state = state
        self.load_error = None
        metrics.state_loaded(state.model_version, len(state.catalog))
        self._reload_variants(state)
        if (
            previous is None
            or state.catalog is not previous.catalog
            or state.model is not previous.model
        ):
            # The catalog's documents and id maps are hundreds of thousands of long-lived
            # objects: out of the collector's way, a full collection does not stall requests.
            gc.freeze()
        if previous is None or previous.model_version != state.model_version:
            log.info(
                "model version loaded",
                extra={"model_version": state.model_version, "catalog_events": len(state.catalog)},
            )
        return True

    def mark_touched(self) -> bool:
        """Take the events anybody has a record of now (the partitions' event lists as the
        state's event space has read them) out of the hybrid's ``new`` ones: a version
        counts interactions up to its fit, and an event booked since is not new. True
        when the state changed. (Any record counts here, a dismissal too; the version's
        counts leave dismissals out.)"""
        state = self.state
        if state is None or state.hybrid is None or state.event_space is None:
            return False
        # A hybrid not marked yet (a new version, catalogue or trending list) gets every
        # event the tables map; the one marked last, what they mapped since.
        indices = state.event_space.take_mapped(everything=state.hybrid is not self._marked)
        positions = state.catalog_positions(indices)
        hybrid = state.hybrid.with_touched(positions[positions >= 0])
        self._marked = hybrid
        if hybrid is state.hybrid:
            return False
        self.state = dataclasses.replace(state, hybrid=hybrid, plain=None)
        return True

    def _reload_variants(self, state: ServingState) -> None:
        """The running experiments, and a state per model version a variant pins.

        A version that cannot be loaded (pruned, refused) serves its variant's users the
        current version instead; their impressions name the version they really got.
        """
        store = self.clients.store
        try:
            experiments = ExperimentStore(store.client, store.keys.prefix).running()
        except UNAVAILABLE_ERRORS:
            return
        states: dict[str, ServingState] = {}
        errors: dict[str, str] = {}
        wanted = {
            variant.model_version
            for experiment in experiments
            for variant in experiment.variants
            if variant.model_version and variant.model_version != state.model_version
        }
        for version in sorted(wanted):
            previous = self.variant_states.get(version)
            if previous is None or previous.catalog_version != state.catalog_version:
                previous = state  # share the catalog just loaded; only the model differs
            try:
                states[version] = build_state(
                    store, self.clients.settings.topic_events, previous, version=version
                )
            except VARIANT_ERRORS as exc:
                if self.variant_errors.get(version) != str(exc):
                    log.error("variant model version %s not loaded: %s", version, exc)
                errors[version] = str(exc)
        self.experiments = experiments
        self.variant_states = states
        self.variant_errors = errors

    def state_for(
        self, version: str | None, state: ServingState, hybrid: str = "on"
    ) -> ServingState:
        """The state serving ``version`` (the current one when it is current or unloaded);
        with ``hybrid="off"``, the same state scoring collaboratively (no blend)."""
        if version is not None and version != state.model_version:
            state = self.variant_states.get(version, state)
        return state.collaborative_only() if hybrid == "off" else state


class ReloadWatcher:
    """Polls the version and catalog counters; reloads within a second of a change.

    It never ends on an error: it logs, backs off (up to ``MAX_BACKOFF_SECONDS``) and
    tries again; with Redis down it keeps its pace, to reload as soon as Redis is back.
    ``Caches.checked_at`` tells ``/ready`` how long it has been failing.
    """

    MAX_BACKOFF_SECONDS = 10.0

    def __init__(self, clients: Clients, caches: Caches) -> None:
        self.clients = clients
        self.caches = caches
        self._task: asyncio.Task[None] | None = None
        self._seen: tuple[Any, ...] | None = None
        self._last_trending = time.monotonic()

    def start(self) -> None:
        self._task = asyncio.create_task(self._watch())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _watch(self) -> None:
        caches = self.caches
        pause = self.clients.settings.serving_reload_seconds
        failures = 0
        while True:
            await asyncio.sleep(pause)
            try:
                ok = await self.check()
            except Exception as exc:  # the watcher must outlive any one failure
                failures += 1
                caches.watch_error = f"{type(exc).__name__}: {exc}"
                if failures == 1 or failures % 100 == 0:
                    log.exception("reload watcher failed (%d in a row); retrying", failures)
                ok = False
            else:
                # Redis down is not a fault of ours: keep polling at the usual pace.
                failures = 0
            if ok:
                caches.watch_error = None
                caches.checked_at = time.monotonic()
            base = self.clients.settings.serving_reload_seconds
            pause = min(self.MAX_BACKOFF_SECONDS, base * 2 ** min(failures, 10))

    async def check(self) -> bool:
        """One poll: reload when something changed; True when everything seen is loaded."""
        clients, caches = self.clients, self.caches
        settings, keys = clients.settings, clients.keys
        try:
            # A pipeline, not MGET: the model keys and the experiments' version sit in two
            # slots (on a cluster, maybe two nodes).
            pipe = clients.redis.pipeline(transaction=False)
            for key in (keys.model_current, keys.model_switches, keys.experiments_version):
                pipe.get(key)
            current, switches, experiments = await pipe.execute()
            catalog_version = await asyncio.to_thread(
                clients.store.entity_version, settings.topic_events
            )
        except UNAVAILABLE_ERRORS as exc:
            caches.watch_error = f"redis unavailable: {exc}"
            return False
        marker = (current, switches, experiments, catalog_version)
        stale_trending = time.monotonic() - self._last_trending > 30
        if marker == self._seen and not stale_trending and caches.load_error is None:
            return await self.refresh_touched()
        if await asyncio.to_thread(caches.reload):
            self._seen = marker
            self._last_trending = time.monotonic()
            return await self.refresh_touched()
        # A refused version is a known state, not a failing watcher.
        return current is not None and current.decode() in caches.refused

    async def refresh_touched(self) -> bool:
        """Read what the partitions' event lists gained and take those events out of the
        hybrid's new ones (:meth:`Caches.mark_touched`). False when Redis did not answer."""
        state = self.caches.state
        if state is None or state.hybrid is None or state.event_space is None:
            return True
        try:
            await self.clients.rows.refresh(state.event_space)
        except UNAVAILABLE_ERRORS as exc:
            self.caches.watch_error = f"redis unavailable: {exc}"
            return False
        self.caches.mark_touched()
        return True


class Runtime:
    """One serving process: its clients, caches, reload watcher and request scorer."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.clients = Clients(settings)
        self.caches = Caches(self.clients)
        self.watcher = ReloadWatcher(self.clients, self.caches)
        self.scorer = BatchScorer(
            lambda user_ids, state: read_users(self.clients, self.caches, user_ids, state),
            min_records=settings.min_interactions_personal,
            hide_viewed=settings.hide_viewed,
        )
        self.impressions = ImpressionSender(settings)

    async def start(self) -> None:
        self.impressions.start()
        try:
            # Before any version: loading one later never waits for numba's compiler.
            await asyncio.to_thread(warm_compiled)
        except Exception:  # a version's own load warms them up again (or fails clearly)
            log.exception("the hybrid's compiled loops did not load at start")
        try:
            await asyncio.to_thread(self.caches.reload)
        except Exception:  # the watcher retries; /ready tells the load balancer meanwhile
            log.exception("first load failed")
        state = self.caches.state
        if state is not None and state.event_space is not None:
            # Before the watcher starts: nothing else uses the space yet.
            try:
                await self.clients.rows.warm(state.event_space)
            except UNAVAILABLE_ERRORS as exc:
                log.warning("event tables not read before the first request: %s", exc)
            self.caches.mark_touched()
        self.watcher.start()

    async def stop(self) -> None:
        scorer = self.scorer
        if scorer.batches:
            log.info(
                "answered %d requests in %d batches (%.1f per batch), %.0f vectors scored each",
                scorer.scored,
                scorer.batches,
                scorer.scored / scorer.batches,
                scorer.scanned / max(scorer.scored, 1),
            )
        self.watcher.stop()
        await asyncio.to_thread(self.impressions.stop)
        await self.clients.close()
