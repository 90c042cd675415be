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
from typing import Any

import numpy as np
import numpy.typing as npt

from eventrec.model.aggregate import InteractionWeights, aggregate
from eventrec.model.content import blend
from eventrec.model.records import (
    RECORD_DTYPE,
    TYPE_BOOKING,
    TYPE_RATING,
    TYPE_SAVE,
    TYPE_VIEW,
    InteractionLog,
)
from eventrec.serving.catalog import Catalog
from eventrec.store.store import Store
from eventrec.store.versions import LoadedModel, current_version, load_version

log = logging.getLogger("eventrec.serving")

# Interactions at which an event's collaborative vector weighs as much as its content one.
CONTENT_BLEND_K0 = 10.0
VERBS = {TYPE_BOOKING: "booked", TYPE_RATING: "rated", TYPE_SAVE: "saved", TYPE_VIEW: "viewed"}
# Which of a user's interactions with an event to name in a reason: the strongest.
STRENGTH = {TYPE_VIEW: 1, TYPE_SAVE: 2, TYPE_RATING: 3, TYPE_BOOKING: 4}


@dataclass
class UserProfileHint:
    city: str | None
    categories: frozenset[str]


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
    # Catalog positions by decreasing vector norm, the vectors in that order transposed
    # (64 x events, contiguous: the layout of the scoring product) and their norms.
    norm_order: npt.NDArray[np.int64] | None = None
    sorted_factors_t: npt.NDArray[np.float32] | None = None
    sorted_norms: npt.NDArray[np.float32] | None = None

    def __post_init__(self) -> None:
        if self.norm_order is None and self.catalog_factors is not None:
            norms = np.linalg.norm(self.catalog_factors.astype(np.float64), axis=1)
            self.norm_order = np.argsort(-norms, kind="stable").astype(np.int64)
            self.sorted_factors_t = np.ascontiguousarray(self.catalog_factors[self.norm_order].T)
            self.sorted_norms = norms[self.norm_order].astype(np.float32)

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

    def catalog_position(self, event: int) -> int | None:
        """The catalog position of a store event index (None: unknown or not in the catalog)."""
        if event >= len(self.store_event_ids):
            return None
        return self.catalog.position.get(self.store_event_ids[event])

    def touched_positions(self, records: np.ndarray) -> list[int]:
        """Catalog positions of every event the row names."""
        found = (self.catalog_position(e) for e in np.unique(records["event"]).tolist())
        return [position for position in found if position is not None]

    def user_vectors(
        self, rows: Sequence[np.ndarray]
    ) -> list[
        tuple[npt.NDArray[np.float32] | None, npt.NDArray[np.int64], dict[int, tuple[int, int]]]
    ]:
        """:meth:`user_vector` of several users' rows, aggregated in one pass."""
        lengths = [len(records) for records in rows]
        records = (
            np.concatenate([np.asarray(r, dtype=RECORD_DTYPE) for r in rows])
            if rows
            else np.zeros(0, dtype=RECORD_DTYPE)
        )
        n_store_events = max(int(records["event"].max()) + 1, 1) if len(records) else 1
        log_ = InteractionLog(
            np.repeat(np.arange(len(rows), dtype=np.int32), lengths),
            records,
            len(rows),
            n_store_events,
        )
        result = aggregate(log_, self.weights, now=time.time())
        hidden, confidence = result.hidden.tocsr(), result.confidence.tocsr()
        model = self.model
        n_model = model.item_factors.shape[0] if model is not None else 0
        out = []
        for user, row in enumerate(rows):
            hidden_events = hidden.indices[hidden.indptr[user] : hidden.indptr[user + 1]]
            found = (self.catalog_position(e) for e in hidden_events.tolist())
            hidden_positions = np.array([p for p in found if p is not None], dtype=np.int64)
            strongest: dict[int, tuple[int, int]] = {}
            for event, kind, moment in zip(
                row["event"].tolist(), row["type"].tolist(), row["time"].tolist(), strict=True
            ):
                if kind in STRENGTH:
                    best = strongest.get(event)
                    if best is None or STRENGTH[kind] >= STRENGTH[best[0]]:
                        strongest[event] = (kind, moment)
            vector: npt.NDArray[np.float32] | None = None
            if model is not None:
                span = slice(confidence.indptr[user], confidence.indptr[user + 1])
                events, values = confidence.indices[span], confidence.data[span]
                known = events < n_model
                vector = np.zeros(model.item_factors.shape[1], dtype=np.float32)
                if known.any():
                    weighted = values[known] * model.column_scale[events[known]]
                    vector += (weighted[None, :] @ model.item_factors[events[known]])[0]
                # Events newer than the model count through their content vectors at once.
                new_events, new_values = events[~known].tolist(), values[~known].tolist()
                for event, value in zip(new_events, new_values, strict=True):
                    position = self.catalog_position(event)
                    if position is not None and self.catalog_factors is not None:
                        vector += np.float32(value) * self.catalog_factors[position]
                if not np.any(vector):
                    vector = None
            out.append((vector, hidden_positions, strongest))
        return out


def build_state(store: Store, topic_events: str, previous: ServingState | None) -> ServingState:
    """Load the current version and catalog; reuse what has not changed."""
    catalog_version = store.entity_version(topic_events)
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
    store_event_ids = _store_event_ids(store, previous)

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
        index_of = {event_id: i for i, event_id in enumerate(model.event_ids)}
        model_index = np.array(
            [index_of.get(event_id, -1) for event_id in catalog.event_ids], dtype=np.int64
        )
        content = model.content_vectors(catalog.documents)
        known = model_index >= 0
        collaborative = np.zeros_like(content)
        collaborative[known] = model.item_factors[model_index[known]]
        interactions = np.zeros(len(catalog), dtype=np.float64)
        interactions[known] = model.popularity[model_index[known]]
        factors = blend(collaborative, content, interactions, k0=CONTENT_BLEND_K0)

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
        store_event_ids=store_event_ids,
        catalog_version=catalog_version,
        model_version=version if model is not None else None,
        built_at=time.time(),
        trending_source=trending_source,
        norm_order=reused.norm_order if reused is not None else None,
        sorted_factors_t=reused.sorted_factors_t if reused is not None else None,
        sorted_norms=reused.sorted_norms if reused is not None else None,
    )
    return state


def _store_event_ids(store: Store, previous: ServingState | None) -> list[str]:
    """The store's event ids; append-only, so only the tail past the previous list is read."""
    if previous is None:
        return store.event_ids()
    known = list(previous.store_event_ids)
    tail = store.client.lrange(store.keys.event_ids, len(known), -1)
    known.extend(raw.decode() for raw in tail)
    return known


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
