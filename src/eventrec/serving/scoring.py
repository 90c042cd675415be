"""Personalised scoring of the requests that arrive together, in one matrix product.

Scoring one user reads every catalog vector (50,000 x 64 float32 is 12.8 MB) for a
mat-vec; eight users in one product read them once and cost about twice one. So requests
queue their rows and are scored together:

- a request announces itself (:meth:`BatchScorer.reading`) while its row is on the way
  from Redis;
- the queue is scored as soon as no announced request is still reading, or at the latest
  ``max_wait`` seconds after the first row queued (a slow Redis reply never holds the
  others longer than that); a lone request waits for nothing.

Under load a worker's connections fall into step: their requests are parsed in one turn
of the event loop, read their rows together, and are scored in one product.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from eventrec.serving.state import ServingState

DEFAULT_MAX_WAIT = 0.003


@dataclass
class Scored:
    """One user's scores over the catalog (None: no usable vector) and what to hide."""

    scores: npt.NDArray[np.float32] | None
    hidden: npt.NDArray[np.int64]
    strongest: dict[int, tuple[int, int]]
    vector: npt.NDArray[np.float32] | None = None


@dataclass
class _Pending:
    state: ServingState
    records: np.ndarray
    future: asyncio.Future[Scored]


class BatchScorer:
    """Collects the rows of concurrent requests; scores them in one product."""

    def __init__(self, max_wait: float = DEFAULT_MAX_WAIT) -> None:
        self.max_wait = max_wait
        self._pending: list[_Pending] = []
        self._reading = 0
        self._soon: asyncio.Handle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self.batches = 0
        self.scored = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        """Wrap a request's row read: the queue waits for it (up to ``max_wait``)."""
        self._reading += 1
        try:
            yield
        finally:
            self._reading -= 1
            if not self._reading and self._pending:
                self._flush_soon()

    def score(self, state: ServingState, records: np.ndarray) -> asyncio.Future[Scored]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Scored] = loop.create_future()
        self._pending.append(_Pending(state, records, future))
        if not self._reading:
            self._flush_soon()
        if self._deadline is None:
            self._deadline = loop.call_later(self.max_wait, self._flush)
        return future

    def _flush_soon(self) -> None:
        # After the callbacks already queued: replies that arrived together join in.
        if self._soon is None:
            self._soon = asyncio.get_running_loop().call_soon(self._flush_if_settled)

    def _flush_if_settled(self) -> None:
        self._soon = None
        # Rows still on their way join this batch; `reading` flushes when the last arrives.
        if not self._reading:
            self._flush()

    def _flush(self) -> None:
        if self._soon is not None:
            self._soon.cancel()
            self._soon = None
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        pending, self._pending = self._pending, []
        if not pending:
            return
        # A reload may swap the state between two requests: score each with its own.
        groups: dict[int, list[_Pending]] = {}
        for item in pending:
            groups.setdefault(id(item.state), []).append(item)
        for group in groups.values():
            try:
                results = score_rows(group[0].state, [item.records for item in group])
            except Exception as exc:  # handed to the waiting requests, never lost
                for item in group:
                    if not item.future.done():
                        item.future.set_exception(exc)
                continue
            for item, result in zip(group, results, strict=True):
                if not item.future.done():
                    item.future.set_result(result)
        self.batches += 1
        self.scored += len(pending)


def score_rows(state: ServingState, rows: list[np.ndarray]) -> list[Scored]:
    """Every user's catalog scores, from one fold-in pass and one matrix product."""
    folded = state.user_vectors(rows)
    scored = [i for i, (vector, _, _) in enumerate(folded) if vector is not None]
    results = [Scored(None, hidden, strongest, vector) for vector, hidden, strongest in folded]
    transposed = state.catalog_factors_t
    if scored and transposed is not None:
        vectors = np.stack([folded[i][0] for i in scored])  # type: ignore[misc]
        # (users x 64) @ (64 x events), the catalog kept transposed: rows come out per user.
        scores = vectors @ transposed
        for row, i in enumerate(scored):
            results[i].scores = scores[row]
    return results
