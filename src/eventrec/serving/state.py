"""What serving holds in memory: the current model version and the catalog, as one value.

A :class:`ServingState` is built off the request path and swapped in whole, so a request
sees either the old state or the new one, never a mix.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from eventrec.model.aggregate import InteractionWeights
from eventrec.model.content_map import catalog_vectors
from eventrec.model.records import (
    TYPE_BOOKING,
    TYPE_RATING,
    TYPE_SAVE,
    TYPE_VIEW,
)
from eventrec.model.served import aggregate_rows, fold_in
from eventrec.serving.catalog import Catalog
from eventrec.serving.events import EventSpace
from eventrec.store.store import Store
from eventrec.store.versions import LoadedModel, current_version, load_version

log = logging.getLogger("eventrec.serving")

VERBS = {TYPE_BOOKING: "booked", TYPE_RATING: "rated", TYPE_SAVE: "saved", TYPE_VIEW: "viewed"}
# Which of a user's interactions with an event to name in a reason: the strongest.
STRENGTH = {TYPE_VIEW: 1, TYPE_SAVE: 2, TYPE_RATING: 3, TYPE_BOOKING: 4}
STRENGTH_TABLE = np.zeros(256, dtype=np.int8)
for _kind, _strength in STRENGTH.items():
    STRENGTH_TABLE[_kind] = _strength


@dataclass
class UserProfileHint:
    city: str | None
    categories: frozenset[str]


@dataclass(frozen=True)
class NormOrder:
    """Catalog positions by decreasing vector norm, the vectors in that order transposed
    (factors x events, contiguous: the layout of the scoring product), and their norms."""

    order: npt.NDArray[np.int64]
    vectors_t: npt.NDArray[np.float32]
    norms: npt.NDArray[np.float32]

    @classmethod
    def of(cls, factors: npt.NDArray[np.float32]) -> NormOrder:
        norms = np.linalg.norm(factors.astype(np.float64), axis=1)
        order = np.argsort(-norms, kind="stable").astype(np.int64)
        return cls(order, np.ascontiguousarray(factors[order].T), norms[order].astype(np.float32))


@dataclass
class ServingState:
    """The model version and catalog one request is answered from."""

    catalog: Catalog
    model: LoadedModel | None
    catalog_factors: npt.NDArray[np.float32] | None
    catalog_model_index: npt.NDArray[np.int64]
    trending: npt.NDArray[np.float32]
    store_event_ids: list[str]
    catalog_version: int
    model_version: str | None
    built_at: float
    # The trending list as stored: an unchanged list is not parsed again.
    trending_source: bytes | None = None
    # ``catalog_factors`` in order of decreasing norm (derived; shared while they stay).
    by_norm: NormOrder | None = None
    # Catalog position of each store event index (-1: not in the catalog); grows lazily.
    store_positions: npt.NDArray[np.int64] | None = None
    # ``store_event_ids`` with the partitions' local -> space tables (serving/events.py).
    event_space: EventSpace | None = None

    def __post_init__(self) -> None:
        if self.event_space is None:
            self.event_space = EventSpace(self.store_event_ids)
        self.catalog_positions(np.zeros(0, dtype=np.int64))  # builds the table off requests
        if self.by_norm is None and self.catalog_factors is not None:
            self.by_norm = NormOrder.of(self.catalog_factors)

    @property
    def weights(self) -> InteractionWeights:
        if self.model is None:
            return InteractionWeights()
        weights: InteractionWeights = self.model.model.weights_
        return weights

    def user_vector(
        self, records: np.ndarray
    ) -> tuple[npt.NDArray[np.float32] | None, npt.NDArray[np.int64], dict[int, tuple[int, int]]]:
        """The user's folded-in vector, hidden catalog positions, and strongest interactions.

        Returns ``(vector or None, hidden positions, {store event index: (type, time)})``.
        """
        return self.user_vectors([records])[0]

    def catalog_positions(self, events: npt.NDArray[np.integer[Any]]) -> npt.NDArray[np.int64]:
        """The catalog position of each store event index (-1: unknown or not in the catalog)."""
        table = self.store_positions
        if table is None or len(table) < len(self.store_event_ids):
            # Ids indexed since the table was built (the id list only grows): the tail.
            start = 0 if table is None else len(table)
            names = self.store_event_ids[start:]
            position = self.catalog.position if names else {}
            tail = np.array([position.get(e, -1) for e in names], dtype=np.int64)
            table = tail if table is None else np.concatenate((table, tail))
            self.store_positions = table
        found = np.full(len(events), -1, dtype=np.int64)
        inside = events < len(table)
        found[inside] = table[events[inside]]
        return found

    def touched_positions(self, records: np.ndarray) -> list[int]:
        """Catalog positions of every event the row names."""
        found = self.catalog_positions(np.unique(records["event"]))
        touched: list[int] = found[found >= 0].tolist()
        return touched

    def user_vectors(
        self, rows: Sequence[np.ndarray], now: float | None = None
    ) -> list[
        tuple[npt.NDArray[np.float32] | None, npt.NDArray[np.int64], dict[int, tuple[int, int]]]
    ]:
        """:meth:`user_vector` of several users' rows, aggregated and folded in at once.

        ``now`` is the clock of the decay (default: the current time).
        """
        n_users = len(rows)
        if not n_users:
            return []
        result, users, records = aggregate_rows(
            rows, self.weights, time.time() if now is None else now
        )
        hidden, confidence = result.hidden.tocsr(), result.confidence.tocsr()

        hidden_positions = self.catalog_positions(hidden.indices)
        strongest = _strongest(users, records, n_users)
        vectors = None
        if self.model is not None:
            self.catalog_positions(np.zeros(0, dtype=np.int64))  # the table covers every id
            table = self.store_positions
            vectors = fold_in(
                confidence,
                self.model.item_factors,
                self.model.column_scale,
                self.catalog_factors,
                table if table is not None else np.zeros(0, dtype=np.int64),
            )
        out = []
        for user in range(n_users):
            span = hidden_positions[hidden.indptr[user] : hidden.indptr[user + 1]]
            vector = vectors[user] if vectors is not None and vectors[user].any() else None
            out.append((vector, span[span >= 0], strongest[user]))
        return out


def _strongest(
    users: npt.NDArray[np.int32], records: np.ndarray, n_users: int
) -> list[dict[int, tuple[int, int]]]:
    """Per user, per event: the strongest interaction (ties: the later record), its time."""
    strength = STRENGTH_TABLE[records["type"]]
    counted = np.flatnonzero(strength > 0)
    events = records["event"][counted]
    order = np.lexsort((counted, strength[counted], events, users[counted]))
    chosen = counted[order]
    user_of, event_of = users[chosen], records["event"][chosen]
    last = np.ones(len(chosen), dtype=bool)
    last[:-1] = (user_of[1:] != user_of[:-1]) | (event_of[1:] != event_of[:-1])
    chosen = chosen[last]
    bounds = np.searchsorted(users[chosen], np.arange(n_users + 1))
    kinds = records["type"][chosen].tolist()
    times = records["time"][chosen].tolist()
    named = records["event"][chosen].tolist()
    result = []
    for user in range(n_users):
        lo, hi = int(bounds[user]), int(bounds[user + 1])
        result.append(
            dict(zip(named[lo:hi], zip(kinds[lo:hi], times[lo:hi], strict=True), strict=True))
        )
    return result


def catalog_factors(
    model: LoadedModel, catalog: Catalog
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float32]]:
    """Each catalog event's index in the model (-1: newer) and the vector it is scored with."""
    index_of = {event_id: i for i, event_id in enumerate(model.event_ids)}
    model_index = np.array(
        [index_of.get(event_id, -1) for event_id in catalog.event_ids], dtype=np.int64
    )
    content = model.content_vectors(catalog.documents)
    return model_index, catalog_vectors(model.item_factors, model.popularity, model_index, content)


def build_state(
    store: Store,
    topic_events: str,
    previous: ServingState | None,
    version: str | Literal["current"] | None = "current",
) -> ServingState:
    """Load a checked model version (default: the current one) and the catalog; reuse
    what has not changed."""
    catalog_version = store.entity_version(topic_events)
    if version == "current":
        version = current_version(store.client, store.keys.prefix)
    model: LoadedModel | None
    if previous is not None and previous.model_version == version:
        model = previous.model
    else:
        model = load_version(store.client, store.keys.prefix, version) if version else None
    if previous is not None and previous.catalog_version == catalog_version:
        catalog = previous.catalog
    else:
        catalog = Catalog.from_documents(store.entity_documents("events", topic_events))
    # Space indices below the model's size are model indices: a new model, a new space.
    if previous is not None and previous.model is model and previous.event_space is not None:
        space = previous.event_space
    else:
        space = EventSpace(list(model.event_ids) if model is not None else [])

    model_index = np.full(len(catalog), -1, dtype=np.int64)
    factors: npt.NDArray[np.float32] | None = None
    reused: ServingState | None = None
    if (
        previous is not None
        and previous.model is model
        and previous.catalog is catalog
        and previous.catalog_factors is not None
    ):
        # Only the trending list changed: the catalog's vectors are still right.
        model_index, factors = previous.catalog_model_index, previous.catalog_factors
        reused = previous
    elif model is not None and len(catalog):
        model_index, factors = catalog_factors(model, catalog)

    trending_source: bytes | None = store.client.get(store.keys.model_trending)
    if (
        previous is not None
        and previous.catalog is catalog
        and trending_source is not None
        and previous.trending_source == trending_source
    ):
        trending = previous.trending
    else:
        trending = _trending(trending_source, catalog)
    state = ServingState(
        catalog=catalog,
        model=model,
        catalog_factors=factors,
        catalog_model_index=model_index,
        trending=trending,
        store_event_ids=space.ids,
        catalog_version=catalog_version,
        model_version=version if model is not None else None,
        built_at=time.time(),
        trending_source=trending_source,
        by_norm=reused.by_norm if reused is not None else None,
        store_positions=previous.store_positions
        if previous is not None and previous.catalog is catalog and previous.event_space is space
        else None,
        event_space=space,
    )
    return state


def _trending(source: bytes | None, catalog: Catalog) -> npt.NDArray[np.float32]:
    """Per catalog event: the trainer's trending score, else the catalog's own counts."""
    scores = np.zeros(len(catalog), dtype=np.float32)
    document: dict[str, Any] | None = json.loads(source) if source is not None else None
    if document and document.get("event_ids"):
        for event_id, score in zip(document["event_ids"], document["scores"], strict=True):
            position = catalog.position.get(event_id)
            if position is not None:
                scores[position] = float(score)
        return scores
    # No trainer output yet (a fresh install): the catalog's bookings and ratings.
    for position, doc in enumerate(catalog.documents):
        scores[position] = float(doc.get("total_bookings") or 0) + float(doc.get("avg_rating") or 0)
    return scores
