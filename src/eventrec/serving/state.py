"""What serving holds in memory: the current model version and the catalog, as one value.

A :class:`ServingState` is built off the request path and swapped in whole, so a request
sees either the old state or the new one, never a mix.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model.aggregate import InteractionWeights
from eventrec.model.blend import HybridBlend
from eventrec.model.content_map import catalog_vectors
from eventrec.model.hybrid import (
    blend_weights,
    catalogue_interactions,
    normalised,
    pair_features,
)
from eventrec.model.hybrid_features import (
    FEATURES,
    HybridCatalogue,
    TextModel,
    event_text,
    group_similarities,
    shared_rest,
    user_signals,
)
from eventrec.model.hybrid_topk import BlockBounds, best_hybrid
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

# The hybrid's shared terms (trending, days to start, days on sale) are computed at the
# start of each such period and reused by every request in it: "soon" and "fresh" move
# by less than 1e-4 of their range in a minute; trending changes with the trainer's list.
SHARED_REFRESH_SECONDS = 60.0

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
class HybridState:
    """The learned hybrid as serving scores with it, built per version and catalogue change.

    ``catalogue``: TF-IDF rows of every catalogue event (the version's vocabulary),
    vectors, norms, prices, cities and their proximity, trending. ``shared_and_max(now)``:
    the blend of the shared features and its maxima per block, recomputed once per
    ``refresh_seconds`` (0: per call).
    """

    blend: HybridBlend
    text: TextModel
    catalogue: HybridCatalogue
    norms: npt.NDArray[np.float64]
    # The events on sale when it was built: the catalogue's scales are taken over them.
    upcoming: npt.NDArray[np.int64]
    refresh_seconds: float = SHARED_REFRESH_SECONDS
    # The catalogue's blocks and each feature's maxima in them (the top-k's bounds).
    blocks: BlockBounds | None = None
    # The shared features' blend at every position and its maxima per block, of one clock.
    _shared: tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]] | None = None
    _shared_clock: float = math.nan

    def __post_init__(self) -> None:
        if self.blocks is None:
            self.blocks = BlockBounds.of(self.catalogue, self.norms)

    def clock(self, now: float) -> float:
        """The instant the hybrid's time-dependent features are computed at for ``now``."""
        if self.refresh_seconds <= 0:
            return now
        return math.floor(now / self.refresh_seconds) * self.refresh_seconds

    def shared_and_max(self, now: float) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]:
        """The shared features' blend at every position, at :meth:`clock` of ``now``, and
        its largest value per block, computed together."""
        clock = self.clock(now)
        if self._shared is None or clock != self._shared_clock:
            positions = np.arange(self.catalogue.tfidf.shape[0], dtype=np.int64)
            shared = shared_rest(self.catalogue, blend_weights(self.blend), positions, clock)
            assert self.blocks is not None
            self._shared = (shared, self.blocks.shared_max(shared))
            self._shared_clock = clock
        return self._shared

    def warm_up(self, now: float) -> None:
        """Run the compiled top-k and explanation loops once on this catalogue, for one
        made-up user with every kind of signal: a worker loads them from numba's cache (or
        compiles them, when the cache has none) here, off the request path, not in its
        first request."""
        catalogue = self.catalogue
        n_events = catalogue.tfidf.shape[0]
        if not n_events:
            return
        users = user_signals(
            catalogue,
            np.ones((1, catalogue.vectors.shape[1]), dtype=np.float32),
            sp.csr_matrix(([1.0], ([0], [0])), shape=(1, n_events), dtype=np.float32),
            sp.csr_matrix(catalogue.tfidf[:1]),
            [{"budget": {"max": 1.0}}],
        )
        shared, shared_max = self.shared_and_max(now)
        ((positions, _),), _ = best_hybrid(
            self.blend,
            catalogue,
            self.norms,
            users,
            [np.ones(n_events, dtype=bool)],
            [10],
            now,
            shared,
            self.blocks,
            shared_max,
        )
        pair_features(catalogue, users, [positions], now)
        group_similarities(catalogue.tfidf, [(np.zeros(1, dtype=np.int64), positions)])

    def with_touched(self, positions: npt.NDArray[np.int64]) -> HybridState:
        """The same hybrid with the events at ``positions`` no longer ``new``: somebody
        has a record of them now (the version counted none). ``self`` when none was new."""
        new = self.catalogue.new
        if not len(positions) or not new[positions].any():
            return self
        new = new.copy()
        new[positions] = 0.0
        blocks = self.blocks
        assert blocks is not None
        if blocks.n_blocks:
            flags = np.maximum.reduceat(new[blocks.order], blocks.starts[:-1]) > 0
            blocks = dataclasses.replace(blocks, new=flags)
        return HybridState(
            self.blend,
            self.text,
            dataclasses.replace(self.catalogue, new=new),
            self.norms,
            self.upcoming,
            self.refresh_seconds,
            blocks,
        )

    def with_trending(self, trending: npt.NDArray[np.float32]) -> HybridState:
        """The same hybrid with a new trending list (nothing else rebuilt)."""
        catalogue = dataclasses.replace(self.catalogue, trending=scaled_trending(trending))
        return HybridState(
            self.blend,
            self.text,
            normalised(catalogue, self.upcoming),
            self.norms,
            self.upcoming,
            self.refresh_seconds,
            self.blocks,  # trending is no block statistic: the shared maxima follow it
        )

    @classmethod
    def build(
        cls,
        blend: HybridBlend,
        text: TextModel,
        catalog: Catalog,
        factors: npt.NDArray[np.float32],
        trending: npt.NDArray[np.float32],
        now: float,
        refresh_seconds: float = SHARED_REFRESH_SECONDS,
        interactions: npt.ArrayLike | None = None,
    ) -> HybridState:
        """Built off the request path; scaled over the events on sale at ``now``.

        ``interactions``: each catalogue event's interaction count as the version knows it
        (:func:`~eventrec.model.hybrid.catalogue_interactions`: the model's events with
        their counts at fit time, newer events 0), which makes an event ``new``; None:
        unknown, no event is new."""
        from eventrec.resources import city_centroids

        documents = catalog.documents
        tfidf = text.transform([event_text(d) for d in documents])
        published = np.array([_epoch(d.get("published_at")) for d in documents], dtype=np.float64)
        catalogue = HybridCatalogue.build(
            documents,
            factors,
            trending,
            catalog.starts_at,
            sp.csr_matrix(tfidf),
            city_centroids(),
            published_at=published,
            interactions=interactions,
        )
        upcoming = np.flatnonzero(catalog.showable & (catalog.starts_at > now)).astype(np.int64)
        norms = np.linalg.norm(catalogue.vectors.astype(np.float64), axis=1)
        return cls(blend, text, normalised(catalogue, upcoming), norms, upcoming, refresh_seconds)


def warm_compiled() -> None:
    """Load the hybrid's compiled loops (or compile them, when numba's cache has none):
    :meth:`HybridState.warm_up` on a made-up catalogue of three events and a blend of
    every feature. A serving process calls it once when it starts, before it loads any
    version, so that no version's load waits for a compiler (the first on a machine
    takes seconds); ``make setup`` calls it to fill the cache."""
    now = time.time()
    documents = {
        f"warm-{i}": json.dumps(
            {
                "schema_version": 1,
                "event_id": f"warm-{i}",
                "title": f"warm {name}",
                "category": name,
                "city": city,
                "venue": f"{city} hall",
                "tags": [name],
                "price": {"amount": 1000.0 * (i + 1), "currency": "LKR"},
                "starts_at": datetime.fromtimestamp(now + 86_400.0 * (i + 1)).isoformat(),
                "published_at": datetime.fromtimestamp(now - 86_400.0).isoformat(),
            }
        )
        for i, (name, city) in enumerate(
            [("music", "Colombo"), ("comedy", "Kandy"), ("theatre", "Galle")]
        )
    }
    catalog = Catalog.from_documents(documents)
    text = TextModel().fit([event_text(d) for d in catalog.documents])
    blend = HybridBlend()
    blend.weights_ = np.ones(len(FEATURES))
    blend.intercept_ = 0.0
    blend.shares_ = dict.fromkeys(FEATURES, 1.0 / len(FEATURES))
    blend.n_pairs_ = 0
    factors = np.eye(3, 4, dtype=np.float32)
    trending = np.ones(3, dtype=np.float32)
    HybridState.build(blend, text, catalog, factors, trending, now).warm_up(now)


def scaled_trending(trending: npt.ArrayLike) -> npt.NDArray[np.float64]:
    """Trending as the hybrid's feature: ``log1p(t) / log1p(max t)``, as the catalogue's."""
    raw = np.maximum(np.asarray(trending, dtype=np.float64), 0.0)
    top = float(np.log1p(raw.max())) if len(raw) else 0.0
    scaled: npt.NDArray[np.float64] = np.log1p(raw) / top if top > 0 else np.zeros(len(raw))
    return scaled


def _epoch(value: Any) -> float:
    if not value:
        return math.nan
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return math.nan


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
    # The learned hybrid (None: a version without a blend scores collaboratively).
    hybrid: HybridState | None = None
    # This state without its blend (an experiment's ``hybrid=off``), made once.
    plain: ServingState | None = dataclasses.field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.event_space is None:
            self.event_space = EventSpace(self.store_event_ids)
        self.catalog_positions(np.zeros(0, dtype=np.int64))  # builds the table off requests
        if self.by_norm is None and self.catalog_factors is not None:
            self.by_norm = NormOrder.of(self.catalog_factors)

    def collaborative_only(self) -> ServingState:
        """The same version and catalogue scored by the collaborative part alone."""
        if self.hybrid is None:
            return self
        if self.plain is None:
            self.plain = dataclasses.replace(self, hybrid=None, plain=None)
        return self.plain

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
        return self.fold(rows, now)[0]

    def fold(
        self, rows: Sequence[np.ndarray], now: float | None = None
    ) -> tuple[
        list[
            tuple[npt.NDArray[np.float32] | None, npt.NDArray[np.int64], dict[int, tuple[int, int]]]
        ],
        sp.csr_matrix,
    ]:
        """:meth:`user_vectors`, and the rows' confidences (users x store event indices)."""
        n_users = len(rows)
        if not n_users:
            return [], sp.csr_matrix((0, 1), dtype=np.float32)
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
        return out, confidence


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
    hybrid: HybridState | None = None
    if (
        model is not None
        and model.blend is not None
        and model.text is not None
        and (factors is not None)
    ):
        if (
            previous is not None
            and previous.hybrid is not None
            and previous.model is model
            and previous.catalog is catalog
        ):
            hybrid = previous.hybrid
            if trending is not previous.trending:
                hybrid = hybrid.with_trending(trending)
        else:
            hybrid = HybridState.build(
                model.blend,
                model.text,
                catalog,
                factors,
                trending,
                time.time(),
                interactions=catalogue_interactions(model.popularity, model_index),
            )
            hybrid.warm_up(time.time())
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
        hybrid=hybrid,
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
