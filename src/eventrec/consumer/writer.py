"""The Redis writer thread: applies the consumer's atomic steps in order, off the poll loop."""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from kafka import TopicPartition

from eventrec.consumer.outage import RedisRetry
from eventrec.errors import FencedBatchError
from eventrec.store.store import StepResult

StoredOffset = Callable[[str, int], int | None]


@dataclass
class Step:
    """One partition's batch, ready to apply: ``apply`` runs its atomic Redis step."""

    tp: TopicPartition
    expected: int
    next_offset: int
    dead_lettered: int
    apply: Callable[[], StepResult]


@dataclass
class Done:
    """A step's outcome: its result, or the fence that refused it."""

    step: Step
    result: StepResult | None = None
    fenced: FencedBatchError | None = None


class Writer:
    """Runs the atomic Redis steps in order on one thread, so fetching and validating the
    next batches overlaps with Redis applying this one. Bounded: the poll loop waits when
    Redis falls behind (or is down)."""

    def __init__(self, with_redis: RedisRetry, stored_offset: StoredOffset, depth: int = 4) -> None:
        self._with_redis = with_redis
        self._stored_offset = stored_offset
        self._queue: queue.Queue[Step | None] = queue.Queue(maxsize=depth)
        self._done: queue.Queue[Done] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="redis-writer", daemon=True)
        self._failure: BaseException | None = None

    def start(self) -> None:
        self._thread.start()

    def submit(self, step: Step) -> None:
        while True:
            self._raise_failure()
            try:
                self._queue.put(step, timeout=0.5)
                return
            except queue.Full:
                continue

    def drain(self) -> None:
        """Wait until every submitted step is applied (or fenced)."""
        while self._queue.unfinished_tasks:
            self._raise_failure()
            time.sleep(0.005)

    def results(self, raise_failure: bool = True) -> list[Done]:
        if raise_failure:
            self._raise_failure()
        found = []
        while True:
            try:
                found.append(self._done.get_nowait())
            except queue.Empty:
                return found

    def stop(self) -> BaseException | None:
        """Apply what is queued (each step atomic), then end; returns the thread's failure."""
        while self._thread.is_alive():
            try:
                self._queue.put(None, timeout=0.5)
                break
            except queue.Full:
                continue
        if self._thread.ident is not None:
            self._thread.join()
        return self._failure

    def _raise_failure(self) -> None:
        if self._failure is not None:
            raise self._failure

    def _run(self) -> None:
        while True:
            step = self._queue.get()
            try:
                if step is None:
                    return
                self._done.put(self._apply(step))
            except BaseException as exc:  # handed to the poll loop, which stops
                self._failure = exc
                return
            finally:
                self._queue.task_done()

    def _apply(self, step: Step) -> Done:
        try:
            return Done(step, result=self._with_redis(step.apply))
        except FencedBatchError as exc:
            stored = self._with_redis(lambda: self._stored_offset(step.tp.topic, step.tp.partition))
            if stored == step.next_offset:
                # Our own step went through but its reply was lost (Redis outage mid-call).
                return Done(step, result=StepResult(applied=0, duplicates=0))
            return Done(step, fenced=exc)
