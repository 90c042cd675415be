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

With a version that carries a learned blend (:mod:`eventrec.model.hybrid`), a user is
scored by the blend of every feature, block by block of alike events: each block's bound
(the largest value each feature can take in it, the shared terms' maxima precomputed per
minute) is computed for the batch at once, and only blocks whose bound can still reach
the top are scored (:func:`eventrec.model.hybrid_topk.best_hybrid`): exact, like the
collaborative pruning.

Under load batches grow with the number of concurrent requests; a lone request waits for
nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from eventrec.model.hybrid import pair_features, signals_of
from eventrec.model.hybrid_features import HybridCatalogue, UserSignals, group_similarities
from eventrec.model.hybrid_topk import best_hybrid
from eventrec.serving import metrics
from eventrec.serving.catalog import Filters, keep_best, top_positions
from eventrec.serving.state import ServingState


@dataclass
class UsersRead:
    """What a batch read of users returns: rows (None: no row), and for the hybrid each
    user's profile (None: none) and recent search queries, newest first."""

    rows: list[np.ndarray | None]
    profiles: list[dict[str, Any] | None] | None = None
    searches: list[list[str]] | None = None


# Reads the current rows of users (None: no row) as of the given state; or a UsersRead.
RowReader = Callable[[list[str], ServingState], Awaitable["list[np.ndarray | None] | UsersRead"]]

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
    ``signals``: the batch's hybrid signals (the user's is ``signal_row``) when the blend
    answered, and
    ``clock`` the instant its features were computed at; ``profile``, ``searches``: what
    the hybrid read of the user (for reasons).
    """

    records: np.ndarray | None
    mask: npt.NDArray[np.bool_] | None = None
    positions: npt.NDArray[np.int64] | None = None
    scores: npt.NDArray[np.floating[Any]] | None = None
    strongest: dict[int, tuple[int, int]] | None = None
    signals: UserSignals | None = None  # the batch's; this user's is row ``signal_row``
    signal_row: int = 0
    clock: float = 0.0
    profile: Mapping[str, Any] | None = None
    searches: Sequence[str] = field(default_factory=list)
    # Scored from the user's own row (False: from the profile and searches alone).
    personal: bool = True
    features: BatchFeatures | None = None  # the features of the items, for reasons


class BatchFeatures:
    """What explaining a batch's answers reads, computed for the whole batch when the
    first answer is explained (one call each instead of one per request): the features
    of every item the blend chose (:func:`~eventrec.model.hybrid.pair_features`), each
    user's own events, and the text similarity of their own events with their items."""

    def __init__(
        self,
        catalogue: HybridCatalogue,
        signals: UserSignals,
        positions: list[npt.NDArray[np.int64]],
        clock: float,
        strongest: Sequence[Mapping[int, tuple[int, int]]] = (),
        positions_of: Callable[[npt.NDArray[np.int64]], npt.NDArray[np.int64]] | None = None,
    ) -> None:
        self.catalogue, self.signals, self.positions, self.clock = (
            catalogue,
            signals,
            positions,
            clock,
        )
        self.strongest = list(strongest) or [{}] * len(positions)
        self.positions_of = positions_of
        self._rows: list[npt.NDArray[np.float64]] | None = None
        self._own: list[list[tuple[int, int, int]]] | None = None
        self._similar: list[npt.NDArray[np.float64]] | None = None

    def of(self, row: int) -> npt.NDArray[np.float64]:
        """Row ``row``'s items' features, shape (len(items), n_features)."""
        if self._rows is None:
            self._rows = pair_features(self.catalogue, self.signals, self.positions, self.clock)
        return self._rows[row]

    def own(self, row: int) -> list[tuple[int, int, int]]:
        """Row ``row``'s events as (store index, catalogue position or -1, interaction
        type), one catalogue lookup for the batch."""
        if self._own is None:
            events = [np.array(list(s), dtype=np.int64) for s in self.strongest]
            every = np.concatenate(events) if events else np.zeros(0, dtype=np.int64)
            found = (
                self.positions_of(every)
                if self.positions_of is not None and len(every)
                else np.full(len(every), -1, dtype=np.int64)
            ).tolist()
            self._own, start = [], 0
            for mine, strongest in zip(events, self.strongest, strict=True):
                indices = mine.tolist()
                places = found[start : start + len(indices)]
                self._own.append(
                    [(e, p, strongest[e][0]) for e, p in zip(indices, places, strict=True)]
                )
                start += len(indices)
        return self._own[row]

    def similar(self, row: int) -> npt.NDArray[np.float64]:
        """Text cosines of row ``row``'s own events that are in the catalogue (in
        :meth:`own`'s order) with its items, shape (n_own_in_catalogue, len(items))."""
        if self._similar is None:
            groups = [
                (np.array([p for _, p, _ in self.own(r) if p >= 0], dtype=np.int64), items)
                for r, items in enumerate(self.positions)
            ]
            self._similar = group_similarities(self.catalogue.tfidf, groups)
        return self._similar[row]


@dataclass
class _Pending:
    state: ServingState
    user_id: str
    filters: Filters
    limit: int
    future: asyncio.Future[Answer]
    records: np.ndarray | None = None
    profile: dict[str, Any] | None = None
    searches: list[str] = field(default_factory=list)


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
                read = rows if isinstance(rows, UsersRead) else UsersRead(rows)
                for n, (item, records) in enumerate(zip(group, read.rows, strict=True)):
                    item.records = records
                    if read.profiles is not None:
                        item.profile = read.profiles[n]
                    if read.searches is not None:
                        item.searches = read.searches[n]
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
            profiles=[item.profile for item in group],
            searches=[item.searches for item in group],
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
    profiles: Sequence[Mapping[str, Any] | None] | None = None,
    searches: Sequence[Sequence[str]] | None = None,
) -> tuple[list[Answer], int]:
    """What serving answers users with these rows at the clock ``now``: pure, no I/O.

    Every answer's ``mask`` is what may be shown to that user: eligible under the filters,
    minus what the row hides (booked, dismissed, rated; viewed with ``hide_viewed``), also
    for rows too short to personalise. With the version's blend, a user with a usable row
    (at least ``min_records`` records), a profile or searches gets the blend's best
    (``positions``); without a blend, a user with a usable row gets the collaborative best.
    Everyone else gets no ``positions``: serving answers them from trending under ``mask``.

    Returns one :class:`Answer` per row and how many catalog vectors were scored.
    """
    n = len(rows)
    answers = [Answer(records) for records in rows]
    user_profiles = list(profiles) if profiles is not None else [None] * n
    user_searches = [list(q) for q in searches] if searches is not None else [[]] * n
    read = [(i, records) for i, records in enumerate(rows) if records is not None and len(records)]
    folded, confidence = state.fold([records for _, records in read], now) if read else ([], None)
    vectors: dict[int, npt.NDArray[np.float32]] = {}
    for _, ((i, records), (vector, hidden, strongest)) in enumerate(zip(read, folded, strict=True)):
        answers[i].strongest = strongest
        if vector is not None and len(records) >= min_records:
            vectors[i] = vector
        answers[i].mask = _mask(state, filters[i], now, hidden, records, hide_viewed)
    hybrid = state.hybrid
    if hybrid is not None and state.catalog_factors is not None:
        chosen = [i for i in range(n) if i in vectors or user_profiles[i] or user_searches[i]]
        if not chosen:
            return answers, 0
        for i in chosen:
            if answers[i].mask is None:
                answers[i].mask = state.catalog.eligible(filters[i], now)
        signals = _signals(state, read, confidence, vectors, chosen, user_profiles, user_searches)
        clock = hybrid.clock(now)
        shared, shared_max = hybrid.shared_and_max(now)
        found, scanned = best_hybrid(
            hybrid.blend,
            hybrid.catalogue,
            hybrid.norms,
            signals,
            [answers[i].mask for i in chosen],  # type: ignore[misc]
            [limits[i] for i in chosen],
            clock,
            shared,
            hybrid.blocks,
            shared_max,
        )
        features = BatchFeatures(
            hybrid.catalogue,
            signals,
            [p for p, _ in found],
            clock,
            [answers[i].strongest or {} for i in chosen],
            state.catalog_positions,
        )
        for row, (i, (positions, scores)) in enumerate(zip(chosen, found, strict=True)):
            answer = answers[i]
            answer.positions, answer.scores = positions, scores
            answer.signals, answer.signal_row = signals, row  # taken only to explain
            answer.clock, answer.features = clock, features
            answer.profile = user_profiles[i]
            answer.searches = user_searches[i]
            answer.personal = i in vectors
        return answers, scanned
    with_vector = [i for i in range(n) if i in vectors and state.catalog_factors is not None]
    scanned = 0
    if with_vector:
        found_plain, scanned = best_eligible(
            state,
            np.stack([vectors[i] for i in with_vector]),
            [answers[i].mask for i in with_vector],  # type: ignore[misc]
            [limits[i] for i in with_vector],
        )
        for i, (plain_positions, plain_scores) in zip(with_vector, found_plain, strict=True):
            answers[i].positions, answers[i].scores = plain_positions, plain_scores
    return answers, scanned


def _mask(
    state: ServingState,
    filters: Filters,
    now: float,
    hidden: npt.NDArray[np.int64],
    records: np.ndarray,
    hide_viewed: bool,
) -> npt.NDArray[np.bool_]:
    mask = state.catalog.eligible(filters, now)
    mask[hidden] = False
    if hide_viewed:
        mask[state.touched_positions(records)] = False
    return mask


def _signals(
    state: ServingState,
    read: list[tuple[int, np.ndarray]],
    confidence: Any,
    vectors: dict[int, npt.NDArray[np.float32]],
    chosen: list[int],
    profiles: Sequence[Mapping[str, Any] | None],
    searches: Sequence[Sequence[str]],
) -> UserSignals:
    """The chosen users' hybrid signals: fold-in vectors, confidences over catalogue
    positions (only for usable rows, like the vector), profiles and searches."""
    hybrid = state.hybrid
    assert hybrid is not None
    import scipy.sparse as sp

    n_factors = hybrid.catalogue.vectors.shape[1]
    user_vectors = np.zeros((len(chosen), n_factors), dtype=np.float32)
    row_of = {i: number for number, (i, _) in enumerate(read)}
    picked = []
    for row, i in enumerate(chosen):
        if i in vectors:
            user_vectors[row] = vectors[i]
            picked.append(row_of[i])
        else:
            picked.append(-1)
    rows = np.array(picked, dtype=np.int64)
    if confidence is None:
        confidence = sp.csr_matrix((1, 1), dtype=np.float32)
        rows[:] = -1
    state.catalog_positions(np.zeros(0, dtype=np.int64))  # the table covers every id
    table = state.store_positions
    return signals_of(
        hybrid.catalogue,
        hybrid.text,
        user_vectors,
        confidence,
        table if table is not None else np.zeros(0, dtype=np.int64),
        [profiles[i] for i in chosen],
        [searches[i] for i in chosen],
        rows,
    )


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
