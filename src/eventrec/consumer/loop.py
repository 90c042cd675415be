"""`eventrec consumer`: Kafka → Redis, exactly once in effect.

Per partition, a batch's records, de-duplication keys and next offset are written in one
atomic Redis step that first checks the stored offset (a fence). Positions come from
Redis, not from Kafka's committed offsets, which are kept only for lag monitoring.
"""

from __future__ import annotations

import gc
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from types import FrameType

import numpy as np
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError, OffsetOutOfRangeError
from kafka.structs import OffsetAndMetadata

from eventrec.config import Settings
from eventrec.consumer import metrics
from eventrec.consumer.attribution import outcomes_of, prepare_attribution
from eventrec.consumer.delivery import Outgoing, deliver
from eventrec.consumer.handler import (
    Message,
    Route,
    assemble_interactions,
    decode_interactions,
    prepare_entities,
)
from eventrec.consumer.outage import Outage, RedisRetry, StoppedError
from eventrec.consumer.rebalance import Rebalance
from eventrec.consumer.writer import Step, Writer
from eventrec.errors import ConfigError, FencedBatchError
from eventrec.schemas import DeadLetter
from eventrec.store.attribution import AttributionStore
from eventrec.store.store import StepResult, Store, connect
from eventrec.telemetry import MetricsServer
from eventrec.topics import missing_topics

log = logging.getLogger("eventrec.consumer")

# A produce request carries a dead letter with its record and batch framing.
DLQ_REQUEST_HEADROOM = 4096


@dataclass
class Counters:
    processed: int = 0
    dead_lettered: int = 0
    deduplicated: int = 0
    routed: int = 0
    batches: int = 0
    fenced: int = 0
    lost: int = 0
    compacted: int = 0
    lag: dict[str, int] = field(default_factory=dict)


class InteractionConsumer:
    """The consumer process: one kafka-python consumer in the group over three topics."""

    def __init__(self, settings: Settings, store: Store) -> None:
        self.settings = settings
        self.store = store
        self.counters = Counters()
        self.positions: dict[TopicPartition, int | None] = {}
        # Per partition, the next offset of its last step Redis acknowledged (or the offset
        # found at assignment): the stored offset never falls below it unless Redis lost
        # writes, which the periodic loss check looks for.
        self.applied: dict[TopicPartition, int] = {}
        self._last_loss_check = time.monotonic()
        self.stopping = threading.Event()
        self._kafka_outage = Outage("kafka")
        # Sends from the writer thread (what a batch delivers before its step) note their own.
        self._writer_kafka_outage = Outage("kafka")
        self._with_redis = RedisRetry(self.stopping)
        self._consumer: KafkaConsumer | None = None
        self._producer: KafkaProducer | None = None
        self._last_lag_check = 0.0
        self._writer = Writer(self._with_redis, store.stored_offset)
        self._attribution = AttributionStore(
            store.client,
            settings.key_prefix,
            window_seconds=settings.attribution_window_days * 86_400,
            dedup_seconds=settings.dedup_window_seconds,
        )

    # -- setup ---------------------------------------------------------------------------

    def _connect_kafka(self) -> None:
        settings = self.settings
        while not self.stopping.is_set():
            try:
                missing = missing_topics(
                    settings,
                    [settings.topic_interactions, settings.topic_events, settings.topic_users,
                     settings.topic_dlq, settings.topic_impressions],
                )  # fmt: skip
                if missing:
                    raise ConfigError(
                        "missing Kafka topics: "
                        + ", ".join(missing)
                        + " (create them with `eventrec topics create`)"
                    )
                delivery_ms = int(settings.dlq_delivery_timeout_seconds * 1000)
                self._producer = KafkaProducer(
                    bootstrap_servers=settings.bootstrap_servers,
                    client_id="eventrec-consumer-dlq",
                    acks="all",
                    retries=2**31 - 1,
                    max_in_flight_requests_per_connection=1,
                    linger_ms=5,
                    max_request_size=settings.dlq_max_message_bytes + DLQ_REQUEST_HEADROOM,
                    delivery_timeout_ms=delivery_ms,
                    request_timeout_ms=min(30_000, delivery_ms - 1_000),
                    metadata_max_age_ms=settings.consumer_metadata_max_age_ms,
                )
                self._consumer = KafkaConsumer(
                    bootstrap_servers=settings.bootstrap_servers,
                    group_id=settings.consumer_group,
                    client_id="eventrec-consumer",
                    enable_auto_commit=False,
                    auto_offset_reset="none",
                    max_poll_records=settings.consumer_max_batch,
                    max_partition_fetch_bytes=8 * 1024 * 1024,
                    fetch_max_bytes=64 * 1024 * 1024,
                    session_timeout_ms=10_000,
                    # A joining member waits until the others heartbeat and learn of the
                    # rebalance: every second, so a new member takes partitions within ~1 s.
                    heartbeat_interval_ms=1_000,
                    max_poll_interval_ms=300_000,
                    # Partitions added to a topic join the assignment within this long.
                    metadata_max_age_ms=settings.consumer_metadata_max_age_ms,
                )
                self._consumer.subscribe(
                    [
                        settings.topic_interactions,
                        settings.topic_events,
                        settings.topic_users,
                        settings.topic_impressions,
                    ],
                    listener=Rebalance(self.partitions_revoked, self.seek_to_stored),
                )
                self._kafka_outage.ok()
                return
            except KafkaError as exc:
                self.stopping.wait(self._kafka_outage.failed(exc))

    def partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Let queued steps land first, so the next owner resumes from current offsets.
        self._writer.drain()
        for tp in revoked:
            self.positions.pop(tp, None)
            self.applied.pop(tp, None)

    def seek_to_stored(self, assigned: list[TopicPartition]) -> None:
        """Seek each assigned partition to the offset stored in Redis (earliest if none)."""
        assert self._consumer is not None
        by_topic: dict[str, list[TopicPartition]] = {}
        for tp in assigned:
            by_topic.setdefault(tp.topic, []).append(tp)
        for topic, partitions in by_topic.items():
            numbers = [tp.partition for tp in partitions]
            stored = self._with_redis(partial(self.store.stored_offsets, topic, numbers))
            for tp in partitions:
                offset = stored[tp.partition]
                if offset is None:
                    self._consumer.seek_to_beginning(tp)
                    self.applied.pop(tp, None)
                else:
                    self._consumer.seek(tp, offset)
                    self.applied[tp] = offset
                self.positions[tp] = offset
        log.info(
            "assigned %d partitions",
            len(assigned),
            extra={"partitions": sorted(map(str, assigned))},
        )

    # -- the loop ------------------------------------------------------------------------

    def run(self) -> None:
        self._with_redis(self.store.check_eviction_policy)
        for warning in self._with_redis(self._attribution.listpack_warnings):
            log.warning(warning)
        self._connect_kafka()
        assert self._consumer is not None
        self._writer.start()
        # A poll keeps thousands of fresh, acyclic objects alive until its batch is written:
        # collect the young generation less often, and never rescan what startup loaded.
        gc.freeze()
        gc.set_threshold(50_000, 20, 20)
        log.info(
            "consumer started",
            extra={"group": self.settings.consumer_group, "topics": self.settings.topics[:3]},
        )
        try:
            while not self.stopping.is_set():
                try:
                    polled = self._consumer.poll(
                        timeout_ms=500, max_records=self.settings.consumer_max_batch
                    )
                    self._kafka_outage.ok()
                except OffsetOutOfRangeError as exc:
                    self._writer.drain()
                    self._reset_out_of_range(exc)
                    continue
                except KafkaError as exc:
                    self.stopping.wait(self._kafka_outage.failed(exc))
                    continue
                for tp, messages in polled.items():
                    if self.stopping.is_set():
                        break  # abandon the rest: nothing of them was written
                    if tp in self.positions and messages:
                        self._apply(tp, messages)
                self._collect_results()
                self._check_for_lost_writes()
                self._commit_for_monitoring()
        except StoppedError:
            log.info("stopped during an outage; the unfinished batch was not applied")
        finally:
            failure = self._writer.stop()
            self._collect_results(refence=False)
            self.close()
        if failure is not None and not isinstance(failure, StoppedError):
            raise failure

    def _apply(self, tp: TopicPartition, messages: Sequence[Message]) -> None:
        """Validate here; the atomic step runs on the writer thread.

        Whatever must reach Kafka before a batch's step (dead letters, routed copies,
        outcomes for attribution) goes out in that step, on the writer thread, through
        :meth:`_deliver_once`: Kafka acknowledges every message before the step may advance
        the offset, and a step retried after a Redis error does not send them again.

        The next batch of the partition is prepared while Redis applies this one; its
        expected offset is this batch's next offset, so the fence keeps them in order.
        """
        settings = self.settings
        started = time.perf_counter()
        expected = self.positions.get(tp)
        # A position read from Redis: a missing stored offset would mean lost writes.
        resumes = expected is not None
        if expected is None:
            expected = messages[0].offset
        next_offset = messages[-1].offset + 1
        delivered = threading.Event()
        step: Callable[[], StepResult]
        if tp.topic == settings.topic_interactions:
            latest = time.time() + settings.max_clock_skew_seconds
            decoded = decode_interactions(tp.topic, tp.partition, expected, messages, latest)

            def step() -> StepResult:
                # Owners are looked up here, off the poll (retried on its own, so Redis is
                # noted back before the sends wait on Kafka); dead letters, routes and
                # outcomes follow the lookup (issue #13's order), the step follows them.
                owners = self._with_redis(
                    partial(self.store.claim_owners, decoded.user_ids, tp.partition)
                )
                prepared = assemble_interactions(decoded, owners)
                prepared.batch.resumes = resumes
                if not delivered.is_set():
                    skip = {letter.offset for letter in prepared.dead_letters}
                    skip.update(route.message.offset for route in prepared.routes)
                    outcomes = outcomes_of(settings.topic_impressions, messages, skip)
                    self._deliver_once(
                        delivered, prepared.dead_letters, prepared.routes, outcomes, tp
                    )
                return self.store.apply_interactions(prepared.batch, time.time(), compact=_compact)

            dead = len(decoded.dead_letters)
        elif tp.topic == settings.topic_impressions:
            attribution = prepare_attribution(tp.topic, tp.partition, expected, messages)
            attribution.batch.resumes = resumes
            dead = len(attribution.dead_letters)

            def step() -> StepResult:
                self._deliver_once(delivered, attribution.dead_letters)
                result = self._attribution.apply(attribution.batch, time.time())
                return StepResult(applied=result.applied, duplicates=result.duplicates)
        else:
            kind = "events" if tp.topic == settings.topic_events else "users"
            entities = prepare_entities(kind, tp.topic, tp.partition, messages)
            if entities.changes:
                # Copies a keyless upsert once left on other partitions must not outlive this.
                ids = [entity_id for entity_id, _ in entities.changes]
                self._with_redis(
                    partial(self.store.remove_entity_copies, kind, tp.topic, tp.partition, ids)
                )
            dead = len(entities.dead_letters)

            def step() -> StepResult:
                self._deliver_once(delivered, entities.dead_letters)
                return self.store.apply_entities(
                    kind,
                    tp.topic,
                    tp.partition,
                    expected,
                    next_offset,
                    entities.changes,
                    dead,
                    resumes=resumes,
                )

        self.positions[tp] = next_offset
        metrics.batch_prepared(tp.topic, len(messages), time.perf_counter() - started)
        self._writer.submit(
            Step(tp, expected, next_offset, dead, metrics.timed_step(tp.topic, step))
        )

    def _collect_results(self, refence: bool = True) -> None:
        for done in self._writer.results(raise_failure=refence):
            step = done.step
            if done.fenced is not None:
                if refence:
                    self._refence(step.tp, done.fenced)
                continue
            result = done.result
            assert result is not None
            if step.tp in self.positions:
                self.applied[step.tp] = step.next_offset
            counters = self.counters
            counters.processed += result.applied
            counters.deduplicated += result.duplicates
            counters.dead_lettered += step.dead_lettered
            counters.routed += result.routed
            counters.batches += 1
            counters.compacted += result.compacted
            metrics.batch_applied(step.tp.topic, result.applied, result.duplicates)
            log.debug(
                "batch committed",
                extra={
                    "topic": step.tp.topic,
                    "partition": step.tp.partition,
                    "offsets": [step.expected, step.next_offset],
                    "applied": result.applied,
                    "duplicates": result.duplicates,
                    "dead_lettered": step.dead_lettered,
                },
            )

    def _refence(self, tp: TopicPartition, exc: FencedBatchError) -> None:
        """After a fenced step, resume from whatever Redis holds now."""
        assert self._consumer is not None
        if tp not in self.positions:
            return  # revoked meanwhile: the new owner resumes from Redis
        self._writer.drain()
        stored = self._with_redis(lambda: self.store.stored_offset(tp.topic, tp.partition))
        self.counters.fenced += 1
        log.warning("batch fenced, re-seeking to %s: %s", stored, exc, extra={"partition": str(tp)})
        if stored is None:
            self._consumer.seek_to_beginning(tp)
            self.applied.pop(tp, None)
        else:
            self._consumer.seek(tp, stored)
            self.applied[tp] = stored
        self.positions[tp] = stored

    def _check_for_lost_writes(self) -> None:
        """Every few seconds, compare each partition's stored offset with what was applied.

        Redis can lose acknowledged writes (a failover to a replica that had not received
        them, a restore from an older copy): the partition's offset goes back with its rows.
        The next step of that partition is fenced and replays the lost part, but a quiet
        partition may have no next step for hours; this check replays it now.
        """
        now = time.monotonic()
        if now - self._last_loss_check < self.settings.consumer_loss_check_seconds:
            return
        self._last_loss_check = now
        applied = dict(self.applied)  # read before the stored offsets: those only grow
        by_topic: dict[str, list[TopicPartition]] = {}
        for tp in applied:
            by_topic.setdefault(tp.topic, []).append(tp)
        for topic, partitions in by_topic.items():
            numbers = [tp.partition for tp in partitions]
            stored = self._with_redis(partial(self.store.stored_offsets, topic, numbers))
            for tp in partitions:
                found = stored[tp.partition]
                if found is not None and found >= applied[tp]:
                    continue
                if tp not in self.positions:
                    continue  # revoked meanwhile: the new owner resumes from Redis
                log.warning(
                    "lost writes: stored offset %s is below the applied %d; replaying",
                    found,
                    applied[tp],
                    extra={"partition": str(tp)},
                )
                self.counters.lost += 1
                self._refence(tp, FencedBatchError(f"{tp.topic}[{tp.partition}]: lost writes"))

    def _deliver_once(
        self,
        delivered: threading.Event,
        letters: list[DeadLetter],
        routes: Sequence[Route] = (),
        outcomes: Sequence[Outgoing] = (),
        source: TopicPartition | None = None,
    ) -> None:
        """Send a batch's dead letters, routed interactions (to their owner partition) and
        outcomes (to attribution), unless ``delivered`` says they went out already.

        Returns once Kafka acknowledged every one, before the batch's step: a crash in
        between re-sends them (a dead letter may appear twice; the owner's de-duplication
        window absorbs a routed copy, attribution's an outcome). Through a Kafka outage it
        waits, noted in the writer thread's outage; raises ``StoppedError`` when stopping.
        """
        if delivered.is_set():
            return
        if letters or routes or outcomes:
            metrics.dead_lettered(letters)
            assert self._producer is not None
            limit = self.settings.dlq_max_message_bytes
            # Too large a message is dead-lettered cut to fit, or it would stall the partition.
            outgoing = [
                Outgoing.dead_letter(self.settings.topic_dlq, x.fitting(limit)) for x in letters
            ]
            for route in routes:
                assert source is not None
                origin = f"{source.topic}/{source.partition}/{route.message.offset}"
                headers = [
                    ("eventrec.routed_from", origin.encode()),
                    ("eventrec.owner", str(route.owner).encode()),
                ]
                outgoing.append(
                    Outgoing(
                        self.settings.topic_interactions,
                        route.message.key,
                        route.message.value,
                        headers,
                        partition=route.owner,
                    )
                )
            outgoing.extend(outcomes)
            outage = self._writer_kafka_outage
            deliver(
                self._producer,
                outgoing,
                flush_timeout=30,
                on_failure=partial(self._kafka_failed, outage=outage),
            )
            outage.ok()
        delivered.set()

    def _kafka_failed(self, exc: BaseException, outage: Outage | None = None) -> None:
        if self.stopping.is_set():
            raise StoppedError from exc
        self.stopping.wait((outage or self._kafka_outage).failed(exc))

    def _reset_out_of_range(self, exc: OffsetOutOfRangeError) -> None:
        assert self._consumer is not None
        policy = self.settings.consumer_offset_reset
        partitions = list(exc.args[0]) if exc.args and isinstance(exc.args[0], dict) else []
        log.error(
            "stored offsets are out of range (topic recreated or truncated?): %s; policy %s",
            {str(tp): offset for tp, offset in (exc.args[0] if partitions else {}).items()},
            policy,
        )
        if policy == "fail":
            raise ConfigError(
                "stored offset out of range and EVENTREC_CONSUMER_OFFSET_RESET=fail"
            ) from exc
        targets = (
            self._consumer.beginning_offsets(partitions)
            if policy == "earliest"
            else self._consumer.end_offsets(partitions)
        )
        for tp in partitions:
            old = self.positions.get(tp)
            new = int(targets[tp])
            self._with_redis(partial(self.store.reset_offset, tp.topic, tp.partition, old, new))
            self._consumer.seek(tp, new)
            self.positions[tp] = new
            self.applied[tp] = new
            log.error("offset of %s reset from %s to %d", tp, old, new)

    def _commit_for_monitoring(self) -> None:
        assert self._consumer is not None
        offsets = {
            tp: OffsetAndMetadata(offset, "", -1)
            for tp, offset in self.positions.items()
            if offset is not None
        }
        if not offsets:
            return
        try:
            self._consumer.commit_async(offsets=offsets)
        except KafkaError as exc:  # lag monitoring only: never worth stopping for
            log.debug("commit for lag monitoring failed: %s", exc)
        now = time.monotonic()
        if now - self._last_lag_check > 30:
            self._last_lag_check = now
            self._log_progress()

    def _log_progress(self) -> None:
        assert self._consumer is not None
        try:
            ends = self._consumer.end_offsets(list(self.positions))
        except KafkaError:
            return
        lags = {
            (tp.topic, tp.partition): max(0, int(ends[tp]) - (position or 0))
            for tp, position in self.positions.items()
            if tp in ends
        }
        metrics.lag_measured(lags)
        lag = sum(lags.values())
        c = self.counters
        log.info(
            "progress",
            extra={
                "processed": c.processed,
                "dead_lettered": c.dead_lettered,
                "deduplicated": c.deduplicated,
                "routed": c.routed,
                "batches": c.batches,
                "fenced": c.fenced,
                "lag": lag,
            },
        )

    def close(self) -> None:
        if self._consumer is not None:
            try:
                self._consumer.close(autocommit=False)  # leaves the group at once
            except KafkaError as exc:
                log.warning("leaving the group failed: %s", exc)
            self._consumer = None
        if self._producer is not None:
            self._producer.close(timeout=10)
            self._producer = None
        log.info("consumer stopped", extra={"processed": self.counters.processed})


def _compact(records: np.ndarray) -> np.ndarray:
    # Imported on the first compaction: it brings scipy, a tenth of a second at startup.
    from eventrec.model.aggregate import compact_row

    compacted: np.ndarray = compact_row(records)
    return compacted


def run_consumer(settings: Settings) -> int:
    """Entry point of `eventrec consumer`: runs until SIGTERM or SIGINT, then exits 0.

    With ``EVENTREC_CONSUMER_PROCESSES`` above 1, the extra members of the group run as
    child processes (Python validates on one core per process); signals are passed on.
    Their metrics go to this process's multiprocess directory (``eventrec consumer``
    chose it), and this process answers ``/metrics`` for all of them.
    """
    server = None
    if settings.consumer_ops_port:
        server = MetricsServer(settings.ops_host, settings.consumer_ops_port)
        log.info("consumer metrics on http://%s:%d/metrics", settings.ops_host, server.port)
    children = [
        subprocess.Popen(
            [sys.executable, "-m", "eventrec.cli", "consumer"],
            env={
                **os.environ,
                "EVENTREC_CONSUMER_PROCESSES": "1",
                "EVENTREC_CONSUMER_OPS_PORT": "0",
            },
        )
        for _ in range(settings.consumer_processes - 1)
    ]
    store = Store(
        connect(settings.redis_url),
        settings.key_prefix,
        dedup_window_seconds=settings.dedup_window_seconds,
        search_cap=settings.search_history,
        compact_threshold_bytes=settings.row_compact_bytes,
        claim_replicas=settings.owner_claim_replicas,
        claim_wait_ms=settings.owner_claim_wait_ms,
    )
    consumer = InteractionConsumer(settings, store)
    signalled: set[int] = set()

    def stop_children() -> None:
        # Once each: a member that has left its run loop may be in interpreter shutdown,
        # where Python has restored SIGTERM's default action and a second one kills it.
        for child in children:
            if child.pid not in signalled and child.poll() is None:
                signalled.add(child.pid)
                child.send_signal(signal.SIGTERM)

    def stop(signum: int, frame: FrameType | None) -> None:
        log.info("signal %d: finishing the current batch and leaving the group", signum)
        consumer.stopping.set()
        stop_children()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    try:
        consumer.run()
    finally:
        stop_children()
        codes = [child.wait() for child in children]
        for child, code in zip(children, codes, strict=True):
            if code != 0:
                log.error("consumer member %d exited with %d", child.pid, code)
        if server is not None:
            server.close()
    return 0 if all(code == 0 for code in codes) else 1
