"""Personalised top-k for the requests that arrive together: pipelined reads, pruned products.

Reading rows one request at a time costs a Redis command each, and scoring a user against
every catalog vector (50,000 x 64 float32 is 12.8 MB) costs a pass over all of them. So:

- requests parsed in one turn of the event loop read their rows in one pipelined round
  trip (reads of successive turns overlap);
- rows that have arrived are folded in and scored together once no read is in flight
  (the others join the batch), or ``max_wait`` after the first arrived at the latest;
- each user's best ``limit`` eligible events are found exactly while scoring only a
  small part of the catalog: vectors are kept in order of decreasing norm, scored a
  block at a time (the batch's users in one product), and a user is done as soon as the
  ``limit``-th best score so far beats ``|u| * |v|`` of the next block's first vector, an
  upper bound (Cauchy-Schwarz) of every score still unseen. A factor model's item norms
  are very uneven (popular events have long vectors), so for most users the first block
  decides. A user whose filters leave few events scores just those.

Under load batches grow with the number of concurrent requests; a lone request waits for
nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from eventrec.serving import metrics
from eventrec.serving.catalog import Filters, keep_best, top_positions
from eventrec.serving.state import ServingState

# Reads the current rows of users (None: no row) as of the given state.
RowReader = Callable[[list[str], ServingState], Awaitable[list[np.ndarray | None]]]

FIRST_BLOCK = 1024
# Scored directly (no pruning) when a user's filters leave at most this many events.
DIRECT_LIMIT = 4096
# The longest rows that have arrived wait for reads still in flight, in seconds.
DEFAULT_MAX_WAIT = 0.002
# Float32 products may round a score slightly above its exact value: widen the bound.
BOUND_SLACK = 1e-4


@dataclass
class Answer:
    """What a request gets back from its batch.

    ``records``: the user's row as read (None: no row). ``mask``: eligible events with the
    user's hidden ones removed (None when the row was not folded in). ``positions`` and
    ``scores``: the best eligible events, best first (None: no usable vector).
    ``strongest``: per store event index, the user's strongest interaction with it.
    """

    records: np.ndarray | None
    mask: npt.NDArray[np.bool_] | None = None
    positions: npt.NDArray[np.int64] | None = None
    scores: npt.NDArray[np.float32] | None = None
    strongest: dict[int, tuple[int, int]] | None = None


@dataclass
class _Pending:
    state: ServingState
    user_id: str
    filters: Filters
    limit: int
    future: asyncio.Future[Answer]
    records: np.ndarray | None = None


class BatchScorer:
    """Answers concurrent requests together: pipelined row reads, pruned products."""

    def __init__(
        self,
        read_rows: RowReader,
        min_records: int = 1,
        hide_viewed: bool = False,
        max_wait: float = DEFAULT_MAX_WAIT,
    ) -> None:
        self._read_rows = read_rows
        self.min_records = min_records
        self.hide_viewed = hide_viewed
        self._to_read: list[_Pending] = []
        self._to_score: list[_Pending] = []
        self._reads: set[asyncio.Task[None]] = set()
        self._reading = 0
        self._soon: asyncio.Handle | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self.max_wait = max_wait
        self.batches = 0
        self.scored = 0
        self.scanned = 0  # catalog vectors scored, summed over users

    def recommend(
        self, state: ServingState, user_id: str, filters: Filters, limit: int
    ) -> asyncio.Future[Answer]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Answer] = loop.create_future()
        if not self._to_read:
            # After the callbacks already queued: requests parsed in this turn join in.
            loop.call_soon(self._start_read)
        self._to_read.append(_Pending(state, user_id, filters, limit, future))
        return future

    def _start_read(self) -> None:
        batch, self._to_read = self._to_read, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._read(batch))
            self._reads.add(task)  # a reference until done: the loop keeps only weak ones
            task.add_done_callback(self._reads.discard)

    async def _read(self, batch: list[_Pending]) -> None:
        # A reload may swap the state between two requests: read each with its own.
        for group in _by_state(batch):
            self._reading += 1
            try:
                rows = await self._read_rows([item.user_id for item in group], group[0].state)
            except Exception as exc:  # handed to the waiting requests, never lost
                _fail(group, exc)
                continue
            else:
                for item, records in zip(group, rows, strict=True):
                    item.records = records
                    self._to_score.append(item)
            finally:
                self._reading -= 1
                self._schedule_score()

    def _schedule_score(self) -> None:
        """Score once no read is in flight (they join this batch), or after ``max_wait``."""
        if not self._to_score:
            return
        loop = asyncio.get_running_loop()
        if not self._reading:
            if self._soon is None:
                self._soon = loop.call_soon(self._score)
        elif self._deadline is None:
            self._deadline = loop.call_later(self.max_wait, self._score)

    def _score(self) -> None:
        for handle in (self._soon, self._deadline):
            if handle is not None:
                handle.cancel()
        self._soon = self._deadline = None
        batch, self._to_score = self._to_score, []
        now = time.time()
        for group in _by_state(batch):
            try:
                answers = self._answer(group, now)
            except Exception as exc:  # handed to the waiting requests, never lost
                _fail(group, exc)
                continue
            for item, answer in zip(group, answers, strict=True):
                if not item.future.done():
                    item.future.set_result(answer)
        self.batches += 1
        self.scored += len(batch)
        metrics.BATCH_REQUESTS.observe(len(batch))

    def _answer(self, group: list[_Pending], now: float) -> list[Answer]:
        answers, scanned = answer_rows(
            group[0].state,
            [item.records for item in group],
            [item.filters for item in group],
            [item.limit for item in group],
            now,
            min_records=self.min_records,
            hide_viewed=self.hide_viewed,
        )
        self.scanned += scanned
        scored = sum(1 for answer in answers if answer.positions is not None)
        for _ in range(scored):  # the batch's work, shared evenly by its requests
            metrics.SCORED_VECTORS.observe(scanned / scored)
        return answers


def answer_rows(
    state: ServingState,
    rows: list[np.ndarray | None],
    filters: list[Filters],
    limits: list[int],
    now: float,
    *,
    min_records: int = 1,
    hide_viewed: bool = False,
) -> tuple[list[Answer], int]:
    """What serving answers users with these rows at the clock ``now``: pure, no I/O.

    Returns one :class:`Answer` per row and how many catalog vectors were scored. A row
    that gets no ``positions`` is answered from trending (``mask`` says what is eligible).
    """
    answers = [Answer(records) for records in rows]
    usable = [
        (i, records)
        for i, records in enumerate(rows)
        if records is not None and len(records) >= min_records
    ]
    if not usable:
        return answers, 0
    folded = state.user_vectors([records for _, records in usable], now)
    with_vector: list[int] = []
    vectors = []
    masks = []
    for (i, records), (vector, hidden, strongest) in zip(usable, folded, strict=True):
        mask = state.catalog.eligible(filters[i], now)
        mask[hidden] = False
        if hide_viewed:
            mask[state.touched_positions(records)] = False
        answers[i].mask = mask
        answers[i].strongest = strongest
        if vector is not None and state.catalog_factors is not None:
            with_vector.append(i)
            vectors.append(vector)
            masks.append(mask)
    scanned = 0
    if with_vector:
        found, scanned = best_eligible(
            state, np.stack(vectors), masks, [limits[i] for i in with_vector]
        )
        for i, (positions, scores) in zip(with_vector, found, strict=True):
            answers[i].positions, answers[i].scores = positions, scores
    return answers, scanned


def _by_state(batch: list[_Pending]) -> list[list[_Pending]]:
    groups: dict[int, list[_Pending]] = {}
    for item in batch:
        groups.setdefault(id(item.state), []).append(item)
    return list(groups.values())


def _fail(group: list[_Pending], exc: Exception) -> None:
    for item in group:
        if not item.future.done():
            item.future.set_exception(exc)


def best_eligible(
    state: ServingState,
    vectors: npt.NDArray[np.float32],
    masks: list[npt.NDArray[np.bool_]],
    limits: list[int],
) -> tuple[list[tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]], int]:
    """Each user's best ``limit`` eligible positions and their scores, best first.

    Exactly :func:`top_positions` of ``catalog_factors @ vector`` under the mask (ties:
    lower position first). Returns the results and how many vectors were scored in all.
    """
    factors, by_norm = state.catalog_factors, state.by_norm
    if factors is None or by_norm is None:
        raise ValueError("best_eligible needs a state with catalog vectors")
    n = len(by_norm.order)
    results = [(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32))] * len(masks)
    scanned = 0
    pruned: list[int] = []
    for user, mask in enumerate(masks):
        if np.count_nonzero(mask) <= DIRECT_LIMIT:
            eligible = np.flatnonzero(mask)
            scores = factors[eligible] @ vectors[user]
            best = top_positions(scores, np.ones(len(eligible), dtype=bool), limits[user])
            results[user] = (eligible[best], scores[best])
            scanned += len(eligible)
        else:
            pruned.append(user)
    if not pruned:
        return results, scanned

    bounds = np.linalg.norm(vectors, axis=1) * (1 + BOUND_SLACK)
    kept_positions: dict[int, npt.NDArray[np.int64]] = {u: np.zeros(0, np.int64) for u in pruned}
    kept_scores: dict[int, npt.NDArray[np.float32]] = {u: np.zeros(0, np.float32) for u in pruned}
    active = pruned
    start, size = 0, FIRST_BLOCK
    while active and start < n:
        stop = min(n, start + size)
        block = by_norm.order[start:stop]
        scores = vectors[active] @ by_norm.vectors_t[:, start:stop]
        scanned += len(active) * (stop - start)
        next_norm = float(by_norm.norms[stop]) if stop < n else 0.0
        still = []
        for row, user in enumerate(active):
            in_block = masks[user][block]
            positions, values = keep_best(
                np.concatenate((kept_positions[user], block[in_block])),
                np.concatenate((kept_scores[user], scores[row][in_block])),
                limits[user],
            )
            kept_positions[user], kept_scores[user] = positions, values
            done = len(values) >= limits[user] and float(values.min()) > bounds[user] * next_norm
            if not done:
                still.append(user)
        active = still
        start, size = stop, size * 2
    for user in pruned:
        positions, values = kept_positions[user], kept_scores[user]
        best = np.lexsort((positions, -values))[: limits[user]]
        results[user] = (positions[best], values[best])
    return results, scanned
