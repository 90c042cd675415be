"""The hybrid's features of a (user, event) pair: every one bounded, so a linear blend of
them keeps an exact pruned top-k (see :mod:`eventrec.model.blend`).

==================  ==========  ===================================================
feature             range       meaning
==================  ==========  ===================================================
``collaborative``   [-1, 1]     ``u . v / (|u| * max |v|)``: the folded-in user vector
                                against the event's (collaborative or content-mapped)
                                vector, scaled by the catalogue's longest vector
``content``         [0, 1]      cosine of the event's TF-IDF and the confidence-weighted
                                TF-IDF of the events the user interacted with
``profile``         [0, 1]      cosine of the event's TF-IDF and the user's stated
                                categories, interests and recent searches
``category``        {0, 1}      the event's category is one the profile prefers
``trending``        [0, 1]      ``log1p(trending) / log1p(max trending)`` at the request
``soon``            [0, 1]      ``exp(-days until the start / SOON_DAYS)``
``fresh``           [0, 1]      ``exp(-days on sale / FRESH_DAYS)`` (0: publication unknown)
``budget``          [0, 1]      1 within the profile's budget, ``budget / price`` above
                                it, 0 without a known budget
``nearby``          [0, 1]      1 in the user's city, ``exp(-km / NEARBY_KM)`` between
                                known cities, 0 otherwise
``new``             {0, 1}      1 when nobody interacted with the event before the
                                request (0: unknown) and the user has a history: a
                                per-user constant times the event's flag, so the blend
                                stays linear; a stranger still gets what is trending
                                (its weight: :meth:`HybridBlend.expose_new`)
==================  ==========  ===================================================

Everything that depends only on the catalogue (TF-IDF rows, vector norms, trending
scaling, city distances) is a :class:`HybridCatalogue`, built once per version and
catalogue change; a request adds only its users' :class:`UserSignals`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model.geo import CityCentroids
from eventrec.model.hybrid_kernel_features import group_cosines, history_profiles

__all__ = [
    "FEATURES",
    "NEARBY_KM",
    "SOON_DAYS",
    "HybridCatalogue",
    "TextModel",
    "UserSignals",
    "csr_pair_dots",
    "csr_row_dots",
    "dense_profiles",
    "event_text",
    "feature_block",
    "group_similarities",
    "personal_weights",
    "ranges",
    "rest_scores",
    "shared_rest",
    "stated_text",
    "text_cosines",
    "user_signals",
    "within_budget",
]

FEATURES = (
    "collaborative",
    "content",
    "profile",
    "category",
    "trending",
    "soon",
    "fresh",
    "budget",
    "nearby",
    "new",
)
COLLABORATIVE = 0
# Days over which "soon" decays by e: a month ahead still counts a third.
SOON_DAYS = 30.0
# Days on sale over which "fresh" decays by e: a new event's bookings come early and late.
FRESH_DAYS = 7.0
# Kilometres over which "nearby" decays by e between two known cities.
NEARBY_KM = 60.0
SECONDS_PER_DAY = 86_400.0
# Pairs up to which text_cosines scores every pair at once (past it, row by row).
PAIRS_AT_ONCE = 65_536
TEXT_FIELDS = ("title", "description", "venue", "organizer", "series")
TOKEN_FIELDS = ("category", "city", "venue", "organizer", "series")


def _token(kind: str, value: Any) -> str:
    return f"{kind}_{value}".replace(" ", "_").casefold()


def event_text(document: Mapping[str, Any] | None) -> str:
    """The text an event's TF-IDF row is made of: title, description, tags, performers and
    one token per structured field (category, city, venue, organizer, series)."""
    if document is None:
        return ""
    parts = [str(document.get(name) or "") for name in TEXT_FIELDS]
    parts.extend(_token(name, document[name]) for name in TOKEN_FIELDS if document.get(name))
    parts.extend(_token("tag", tag) for tag in document.get("tags") or [])
    for performer in document.get("performers") or []:
        parts.extend((str(performer), _token("performer", performer)))
    return " ".join(parts)


def stated_text(profile: Mapping[str, Any] | None, searches: Sequence[str] = ()) -> str:
    """What a user said they like: preferred categories, interests, recent searches."""
    parts = [_token("category", c) for c in (profile or {}).get("preferred_categories") or []]
    for interest in (profile or {}).get("interests") or []:
        parts.extend((str(interest), _token("tag", interest)))
    parts.extend(str(query) for query in searches)
    return " ".join(parts)


def _price(document: Mapping[str, Any] | None) -> float:
    value = (document or {}).get("price")
    if isinstance(value, Mapping):
        value = value.get("amount")
    try:
        return float(value) if value is not None else float("nan")
    except (TypeError, ValueError):
        return float("nan")


class TextModel:
    """TF-IDF (scikit-learn) of event texts, kept as plain values (no pickle).

    Attributes
    ----------
    vocabulary_ : dict of str -> int
    idf_ : ndarray of shape (n_terms,), float64
    """

    def __init__(self, min_df: int = 1) -> None:
        self.min_df = min_df

    def _vectorizer(self) -> Any:
        from sklearn.feature_extraction.text import TfidfVectorizer

        return TfidfVectorizer(sublinear_tf=True, min_df=self.min_df)

    def fit(self, texts: Sequence[str]) -> TextModel:
        vectorizer = self._vectorizer()
        if any(texts):
            try:
                vectorizer.fit(texts)
            except ValueError:  # no term kept
                vectorizer = None
        else:
            vectorizer = None
        self.vocabulary_ = (
            {}
            if vectorizer is None
            else {str(term): int(i) for term, i in vectorizer.vocabulary_.items()}
        )
        self.idf_ = np.zeros(0) if vectorizer is None else np.asarray(vectorizer.idf_)
        return self

    def transform(self, texts: Sequence[str]) -> sp.csr_matrix:
        """Unit-norm TF-IDF rows, shape (len(texts), n_terms); unknown terms ignored."""
        if not self.vocabulary_:
            return sp.csr_matrix((len(texts), 1), dtype=np.float32)
        vectorizer = self._vectorizer()
        vectorizer.vocabulary_ = self.vocabulary_
        vectorizer.idf_ = self.idf_
        return sp.csr_matrix(vectorizer.transform(texts), dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"min_df": self.min_df, "vocabulary": self.vocabulary_, "idf": self.idf_.tolist()}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TextModel:
        model = cls(int(values["min_df"]))
        model.vocabulary_ = {str(k): int(v) for k, v in values["vocabulary"].items()}
        model.idf_ = np.asarray(values["idf"], dtype=np.float64)
        return model


@dataclass(frozen=True)
class HybridCatalogue:
    """What the features need of a catalogue, position ``i`` being the same event in each.

    Attributes
    ----------
    tfidf : csr_matrix of shape (n_events, n_terms), float32, rows of unit norm (or 0)
    vectors : ndarray of shape (n_events, n_factors), float32
    max_norm : float
        The longest vector's norm (1 when every vector is zero).
    trending : ndarray of shape (n_events,), float64, in [0, 1]
    starts_at : ndarray of shape (n_events,), float64 (NaN: unknown)
    price : ndarray of shape (n_events,), float64 (NaN: unknown)
    city : ndarray of shape (n_events,), int64 (-1: unknown)
    city_codes : dict
        Case-folded city name -> code.
    proximity : ndarray of shape (n_cities, n_cities), float64, in [0, 1]
    category : ndarray of shape (n_events,), int64 (-1: unknown)
    category_codes : dict
        Case-folded category name -> code.
    published_at : ndarray of shape (n_events,), float64 (NaN: unknown)
    new : ndarray of shape (n_events,), float64, in {0, 1}
        1: no interaction with the event before the catalogue's instant (0 when unknown).
    """

    tfidf: sp.csr_matrix
    vectors: npt.NDArray[np.float32]
    max_norm: float
    trending: npt.NDArray[np.float64]
    starts_at: npt.NDArray[np.float64]
    price: npt.NDArray[np.float64]
    city: npt.NDArray[np.int64]
    city_codes: dict[str, int]
    proximity: npt.NDArray[np.float64]
    category: npt.NDArray[np.int64]
    category_codes: dict[str, int]
    published_at: npt.NDArray[np.float64]
    # ``tfidf`` transposed (terms x events, CSR): a profile's products without a conversion.
    tfidf_t: sp.csr_matrix = field(default_factory=lambda: sp.csr_matrix((0, 0)))
    new: npt.NDArray[np.float64] = field(default_factory=lambda: np.zeros(0))
    # A code per venue (-1: unknown): orders the blocks of an exact top-k, no feature.
    venue: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))

    def __post_init__(self) -> None:
        if self.new.shape != (self.tfidf.shape[0],):
            object.__setattr__(self, "new", np.zeros(self.tfidf.shape[0]))
        if self.venue.shape != (self.tfidf.shape[0],):
            object.__setattr__(self, "venue", np.full(self.tfidf.shape[0], -1, dtype=np.int64))
        if self.tfidf_t.shape != (self.tfidf.shape[1], self.tfidf.shape[0]):
            object.__setattr__(self, "tfidf_t", sp.csr_matrix(self.tfidf.T, dtype=np.float32))

    @classmethod
    def build(
        cls,
        documents: Sequence[Mapping[str, Any] | None],
        vectors: npt.NDArray[np.float32],
        trending: npt.ArrayLike,
        starts_at: npt.ArrayLike,
        tfidf: sp.csr_matrix,
        centroids: CityCentroids | None = None,
        published_at: npt.ArrayLike | None = None,
        interactions: npt.ArrayLike | None = None,
    ) -> HybridCatalogue:
        """The catalogue's arrays; ``tfidf`` is :class:`TextModel`'s transform of it;
        ``interactions`` counts each event's records before the instant (None: unknown)."""
        names = sorted(
            {str(d["city"]).casefold() for d in documents if d is not None and d.get("city")}
        )
        codes = {name: i for i, name in enumerate(names)}
        city = np.array(
            [codes.get(str((d or {}).get("city") or "").casefold(), -1) for d in documents],
            dtype=np.int64,
        )
        proximity = np.eye(len(names))
        if centroids is not None:
            for i, a in enumerate(names):
                for j, b in enumerate(names[i + 1 :], start=i + 1):
                    km = centroids.distance_km(a, b)
                    if km is not None:
                        proximity[i, j] = proximity[j, i] = float(np.exp(-km / NEARBY_KM))
        category_names = sorted(
            {
                str(d["category"]).casefold()
                for d in documents
                if d is not None and d.get("category")
            }
        )
        category_codes = {name: i for i, name in enumerate(category_names)}
        category = np.array(
            [
                category_codes.get(str((d or {}).get("category") or "").casefold(), -1)
                for d in documents
            ],
            dtype=np.int64,
        )
        venue_names = {
            name: i
            for i, name in enumerate(
                sorted({str(d["venue"]) for d in documents if d is not None and d.get("venue")})
            )
        }
        venue = np.array(
            [venue_names.get(str((d or {}).get("venue") or ""), -1) for d in documents],
            dtype=np.int64,
        )
        norms = np.linalg.norm(np.asarray(vectors, dtype=np.float64), axis=1)
        largest = float(norms.max()) if len(norms) else 0.0
        raw = np.maximum(np.asarray(trending, dtype=np.float64), 0.0)
        top = float(np.log1p(raw.max())) if len(raw) else 0.0
        return cls(
            tfidf=sp.csr_matrix(tfidf, dtype=np.float32),
            vectors=np.asarray(vectors, dtype=np.float32),
            max_norm=largest if largest > 0 else 1.0,
            trending=np.log1p(raw) / top if top > 0 else np.zeros(len(raw)),
            starts_at=np.asarray(starts_at, dtype=np.float64),
            price=np.array([_price(d) for d in documents], dtype=np.float64),
            city=city,
            city_codes=codes,
            proximity=proximity,
            category=category,
            category_codes=category_codes,
            published_at=np.full(len(documents), np.nan)
            if published_at is None
            else np.asarray(published_at, dtype=np.float64),
            new=np.zeros(len(documents))
            if interactions is None
            else (np.asarray(interactions)[: len(documents)] == 0).astype(np.float64),
            venue=venue,
        )


@dataclass(frozen=True)
class UserSignals:
    """What the features need of a batch of users, row ``i`` being user ``i``.

    Attributes
    ----------
    vectors : ndarray of shape (n_users, n_factors), float32 (zero: no history)
    history : csr_matrix of shape (n_users, n_terms), rows of unit norm (or 0)
    stated : csr_matrix of shape (n_users, n_terms), rows of unit norm (or 0)
    budget : ndarray of shape (n_users,), float64 (NaN: unknown)
    city : ndarray of shape (n_users,), int64 (-1: unknown)
    categories : ndarray of shape (n_users, n_categories), bool
        The catalogue's categories each profile prefers.
    """

    vectors: npt.NDArray[np.float32]
    history: sp.csr_matrix
    stated: sp.csr_matrix
    budget: npt.NDArray[np.float64]
    city: npt.NDArray[np.int64]
    categories: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.vectors)

    def take(self, rows: npt.ArrayLike) -> UserSignals:
        index = np.asarray(rows, dtype=np.int64)
        return UserSignals(
            self.vectors[index],
            sp.csr_matrix(self.history[index]),
            sp.csr_matrix(self.stated[index]),
            self.budget[index],
            self.city[index],
            self.categories[index],
        )


def _unit_rows(matrix: sp.spmatrix | sp.sparray) -> sp.csr_matrix:
    """Each row divided by its norm (0 rows stay 0), float32, canonical (sorted terms).

    Norms are float64 sums of squares in the row's term order, read from the CSR arrays
    directly (a batch's signals are rebuilt per request batch: no scipy products here).
    """
    rows = sp.csr_matrix(matrix, dtype=np.float32, copy=True)
    if not rows.nnz:  # no profile states anything (a batch without profiles or searches)
        return rows
    rows.sum_duplicates()
    rows.eliminate_zeros()
    lengths = np.diff(rows.indptr)
    owner = np.repeat(np.arange(rows.shape[0]), lengths)
    squares = np.square(rows.data, dtype=np.float64)
    norms = np.sqrt(np.bincount(owner, weights=squares, minlength=rows.shape[0]))
    scale = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    data = (rows.data * scale[owner]).astype(np.float32)
    return sp.csr_matrix((data, rows.indices, rows.indptr), shape=rows.shape)


def user_signals(
    catalogue: HybridCatalogue,
    vectors: npt.NDArray[np.float32],
    confidence: sp.csr_matrix,
    stated_tfidf: sp.csr_matrix,
    profiles: Sequence[Mapping[str, Any] | None],
    rows: npt.NDArray[np.int64] | None = None,
    position_of: npt.NDArray[np.int64] | None = None,
) -> UserSignals:
    """Users' signals from their fold-in vectors, confidences, stated TF-IDF and profiles.

    User ``i``'s history is row ``rows[i]`` of ``confidence`` (-1: none; default: row
    ``i``), its columns catalogue positions, or event indices mapped by ``position_of``
    (-1: not in the catalogue); columns beyond the catalogue are ignored."""
    indptr, indices, data = history_profiles(
        sp.csr_matrix(confidence), catalogue.tfidf, rows, position_of
    )
    history = sp.csr_matrix(
        (data, indices, indptr), shape=(len(indptr) - 1, catalogue.tfidf.shape[1])
    )
    budget = np.full(len(profiles), np.nan)
    city = np.full(len(profiles), -1, dtype=np.int64)
    # One spare column: the code of events without a known category, never preferred.
    categories = np.zeros((len(profiles), len(catalogue.category_codes) + 1), dtype=bool)
    for row, profile in enumerate(profiles):
        if not profile:
            continue
        for name in profile.get("preferred_categories") or []:
            code = catalogue.category_codes.get(str(name).casefold())
            if code is not None:
                categories[row, code] = True
        limits = profile.get("budget")
        if isinstance(limits, Mapping) and limits.get("max") is not None:
            budget[row] = float(limits["max"])
        if profile.get("city"):
            city[row] = catalogue.city_codes.get(str(profile["city"]).casefold(), -1)
    return UserSignals(
        vectors=np.asarray(vectors, dtype=np.float32),
        history=history,
        stated=_unit_rows(stated_tfidf),
        budget=budget,
        city=city,
        categories=categories,
    )


def feature_block(
    catalogue: HybridCatalogue,
    users: UserSignals,
    positions: npt.NDArray[np.int64],
    now: float,
    user: int | None = None,
) -> npt.NDArray[np.float64]:
    """Every feature of every (user, position) pair; of user ``user`` alone when given
    (the same values, read from the batch's arrays without copying its profiles).

    Returns
    -------
    ndarray of shape (len(users) or 1, len(positions), len(FEATURES)), float64
    """
    positions = np.asarray(positions, dtype=np.int64)
    picked = slice(None) if user is None else slice(user, user + 1)
    vectors = users.vectors[picked]
    n, m = len(vectors), len(positions)
    block = np.zeros((n, m, len(FEATURES)), dtype=np.float64)
    everything = m == len(catalogue.vectors) and np.array_equal(positions, np.arange(m))
    norms = np.linalg.norm(vectors.astype(np.float64), axis=1)
    scale = np.divide(1.0, norms * catalogue.max_norm, out=np.zeros(n), where=norms > 0)
    event_vectors = catalogue.vectors if everything else catalogue.vectors[positions]
    dots = (vectors @ event_vectors.T).astype(np.float64)
    block[:, :, 0] = dots * scale[:, None]  # within [-1, 1] by Cauchy-Schwarz
    rows = np.arange(len(users), dtype=np.int64)[picked]
    for column, profile in ((1, users.history), (2, users.stated)):
        # Some positions (a response's items): their own terms only, as the top-k sums them.
        cosines = (
            (profile[rows] @ catalogue.tfidf_t).toarray()
            if everything
            else text_cosines(catalogue.tfidf, profile, positions, rows)
        )
        block[:, :, column] = np.clip(cosines, 0.0, 1.0)
    block[:, :, 3] = users.categories[picked][:, catalogue.category[positions]]
    block[:, :, 4] = catalogue.trending[positions][None, :]
    days = (catalogue.starts_at[positions] - now) / SECONDS_PER_DAY
    soon = np.where(np.isfinite(days), np.exp(-np.maximum(days, 0.0) / SOON_DAYS), 0.0)
    block[:, :, 5] = soon[None, :]
    on_sale = (now - catalogue.published_at[positions]) / SECONDS_PER_DAY
    fresh = np.where(np.isfinite(on_sale), np.exp(-np.maximum(on_sale, 0.0) / FRESH_DAYS), 0.0)
    block[:, :, 6] = fresh[None, :]
    price = catalogue.price[positions][None, :]
    budget = users.budget[picked][:, None]
    block[:, :, 7] = within_budget(price, budget)
    event_city = catalogue.city[positions]
    city = users.city[picked]
    known = (city[:, None] >= 0) & (event_city[None, :] >= 0)
    near = catalogue.proximity[np.maximum(city, 0)[:, None], np.maximum(event_city, 0)]
    block[:, :, 8] = np.where(known, near, 0.0)
    has_history = np.diff(users.history.indptr)[picked] > 0
    block[:, :, 9] = has_history[:, None] * catalogue.new[positions][None, :]
    return block


# Features that do not depend on the user: one column per catalogue, shared by a batch.
SHARED_FEATURES = ("trending", "soon", "fresh")
# Cosines of TF-IDF profiles: summed sparsely, added last (see :func:`rest_scores`).
TEXT_FEATURES = ("content", "profile")


def shared_columns(
    catalogue: HybridCatalogue, positions: npt.NDArray[np.int64], now: float
) -> dict[str, npt.NDArray[np.float64]]:
    """The user-independent features of :data:`SHARED_FEATURES` at ``positions``, as
    :func:`feature_block` computes them (serving precomputes them on a cadence)."""
    positions = np.asarray(positions, dtype=np.int64)
    days = (catalogue.starts_at[positions] - now) / SECONDS_PER_DAY
    on_sale = (now - catalogue.published_at[positions]) / SECONDS_PER_DAY
    return {
        "trending": catalogue.trending[positions].astype(np.float64),
        "soon": np.where(np.isfinite(days), np.exp(-np.maximum(days, 0.0) / SOON_DAYS), 0.0),
        "fresh": np.where(
            np.isfinite(on_sale), np.exp(-np.maximum(on_sale, 0.0) / FRESH_DAYS), 0.0
        ),
    }


def shared_rest(
    catalogue: HybridCatalogue,
    weights: Mapping[str, float],
    positions: npt.NDArray[np.int64],
    now: float,
) -> npt.NDArray[np.float64]:
    """``sum_f w_f x_f`` over the shared features the weights name, at ``positions``."""
    columns = shared_columns(catalogue, positions, now)
    total = np.zeros(len(positions))
    for name, weight in weights.items():
        if name in columns and weight != 0.0:
            total += weight * columns[name]
    return total


def row_dots(
    tfidf: sp.csr_matrix, profile: npt.NDArray[np.float64], positions: npt.NDArray[np.int64]
) -> npt.NDArray[np.float64]:
    """``tfidf[positions] @ profile`` (a dense profile over the terms) in float64, each
    position's sum over its own terms in their stored order: the same value whichever
    other positions are computed with it."""
    return csr_row_dots(tfidf.indptr, tfidf.indices, tfidf.data, profile, positions)


def csr_row_dots(
    indptr: npt.NDArray[np.integer[Any]],
    indices: npt.NDArray[np.integer[Any]],
    data: npt.NDArray[np.floating[Any]],
    profile: npt.NDArray[np.float64],
    rows: npt.ArrayLike,
) -> npt.NDArray[np.float64]:
    """:func:`row_dots` on a CSR matrix given by its arrays, at ``rows``."""
    rows = np.asarray(rows, dtype=np.int64)
    starts, stops = indptr[rows], indptr[rows + 1]
    offsets = ranges(starts, stops)
    owner = np.repeat(np.arange(len(rows)), stops - starts)
    products = data[offsets].astype(np.float64) * profile[indices[offsets]]
    return np.asarray(np.bincount(owner, weights=products, minlength=len(rows)), dtype=np.float64)


def ranges(
    starts: npt.NDArray[np.integer[Any]], stops: npt.NDArray[np.integer[Any]]
) -> npt.NDArray[np.int64]:
    """``concatenate([arange(a, b) for a, b in zip(starts, stops)])`` without the loop."""
    lengths = np.asarray(stops, dtype=np.int64) - starts
    offsets = np.repeat(starts - (np.cumsum(lengths) - lengths), lengths)
    result: npt.NDArray[np.int64] = np.arange(int(lengths.sum()), dtype=np.int64) + offsets
    return result


def group_similarities(
    tfidf: sp.csr_matrix, groups: Sequence[tuple[npt.ArrayLike, npt.ArrayLike]]
) -> list[npt.NDArray[np.float64]]:
    """For each group ``(rows, columns)``, ``tfidf[rows] @ tfidf[columns].T`` (cosines of
    unit rows) in float64, each summed over the row's terms in stored order: every group
    in one compiled pass (a batch's explanations: a few rows and columns per user).

    Returns
    -------
    list of ndarray of shape (len(rows), len(columns)), float64
    """
    matrix = sp.csr_matrix(tfidf)
    return group_cosines(
        matrix.indptr,
        matrix.indices,
        matrix.data,
        matrix.shape[1],
        [
            (np.asarray(rows, dtype=np.int64), np.asarray(columns, dtype=np.int64))
            for rows, columns in groups
        ],
    )


def dense_profile(profiles: sp.csr_matrix, row: int, n_terms: int) -> npt.NDArray[np.float64]:
    """Row ``row`` of a sparse profile matrix as a dense float64 vector over the terms."""
    start, stop = profiles.indptr[row], profiles.indptr[row + 1]
    dense = np.zeros(n_terms)
    dense[profiles.indices[start:stop]] = profiles.data[start:stop]
    return dense


def dense_profiles(
    matrix: sp.csr_matrix, n_terms: int
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """The non-empty rows of a sparse profile matrix as dense rows over the terms they
    use: ``(dense, row_of, columns)``, ``row_of[user]`` the user's dense row (-1: empty)
    and ``columns[term]`` the term's column (the last column, all zeros, for a term no
    profile uses). A few thousand columns, not the whole vocabulary per user."""
    lengths = np.diff(matrix.indptr)
    present = np.flatnonzero(lengths > 0)
    row_of = np.full(matrix.shape[0], -1, dtype=np.int64)
    row_of[present] = np.arange(len(present))
    used = np.unique(matrix.indices[: matrix.indptr[-1]])
    columns = np.full(n_terms, len(used), dtype=np.int64)
    columns[used] = np.arange(len(used))
    dense = np.zeros((len(present), len(used) + 1))
    owners = np.repeat(row_of, lengths)
    entries = slice(0, int(matrix.indptr[-1]))
    dense[owners, columns[matrix.indices[entries]]] = matrix.data[entries]
    return dense, row_of, columns


def text_cosines(
    tfidf: sp.csr_matrix,
    profiles: sp.csr_matrix,
    positions: npt.NDArray[np.int64],
    rows: npt.ArrayLike | None = None,
) -> npt.NDArray[np.float64]:
    """``profiles[rows] @ tfidf[positions].T`` in float64 by :func:`row_dots` (``rows``:
    every profile when None): every pair at once when there are at most
    :data:`PAIRS_AT_ONCE`, else row by row, read from the CSR arrays (the same sums).

    Returns
    -------
    ndarray of shape (len(rows), len(positions)), float64
    """
    positions = np.asarray(positions, dtype=np.int64)
    picked = (
        np.arange(profiles.shape[0], dtype=np.int64)
        if rows is None
        else np.asarray(rows, dtype=np.int64)
    )
    result = np.zeros((len(picked), len(positions)))
    if len(picked) * len(positions) <= PAIRS_AT_ONCE:
        # Few pairs (a batch's items): every pair in one pass, the same sums.
        dense, row_of, columns = dense_profiles(profiles[picked], tfidf.shape[1])
        owner = np.repeat(row_of, len(positions))
        has = np.flatnonzero(owner >= 0)
        where = np.tile(positions, len(picked))[has]
        result.ravel()[has] = csr_pair_dots(
            tfidf.indptr, tfidf.indices, tfidf.data, dense, owner[has], where, columns
        )
        return result
    for out, user in enumerate(picked.tolist()):
        if profiles.indptr[user] == profiles.indptr[user + 1]:
            continue
        result[out] = row_dots(tfidf, dense_profile(profiles, user, tfidf.shape[1]), positions)
    return result


def within_budget(
    price: npt.NDArray[np.floating[Any]], budget: npt.NDArray[np.floating[Any]]
) -> npt.NDArray[np.float64]:
    """The "budget" feature (broadcast): 1 within the budget, else budget / price,
    clipped to [0, 1]; 0 where either is unknown."""
    with np.errstate(divide="ignore", invalid="ignore"):
        within = np.where(price <= budget, 1.0, budget / price)
    result: npt.NDArray[np.float64] = np.where(np.isfinite(within), np.clip(within, 0.0, 1.0), 0.0)
    return result


def personal_weights(weights: Mapping[str, float]) -> list[tuple[str, float]]:
    """The weighted features that depend on the user and are neither collaborative nor
    text (what :func:`rest_scores` and the compiled top-k add one by one), in order."""
    return [
        (name, weight)
        for name, weight in weights.items()
        if weight != 0.0
        and name != FEATURES[COLLABORATIVE]
        and name not in SHARED_FEATURES
        and name not in TEXT_FEATURES
    ]


def rest_scores(
    catalogue: HybridCatalogue,
    users: UserSignals,
    weights: Mapping[str, float],
    positions: npt.NDArray[np.int64],
    now: float,
    shared: npt.NDArray[np.float64] | None = None,
    user: int | None = None,
) -> npt.NDArray[np.float64]:
    """The blend of every feature but the collaborative one, fast: ``sum_f w_f x_f``.

    Equal to the blend of :func:`feature_block`'s non-collaborative columns, computed
    without the dense block: the shared features once for the batch (or ``shared``,
    precomputed at ``positions``), the personal ones only where they can be non-zero
    (sparse TF-IDF products, the categories a profile names, known budgets and cities).
    A feature this function does not know is taken from :func:`feature_block`.

    Parameters
    ----------
    weights : mapping of feature name -> weight
        The blend's weights; ``collaborative`` is ignored.
    positions : ndarray of int64
        Catalogue positions to score.
    user : int, optional
        Score this row of ``users`` alone (the same values as in the whole batch).

    Returns
    -------
    ndarray of shape (len(users) or 1, len(positions)), float64
    """
    positions = np.asarray(positions, dtype=np.int64)
    picked = slice(None) if user is None else slice(user, user + 1)
    first = 0 if user is None else user  # row i of the result is row first + i of users
    categories = users.categories[picked]
    n, m = len(categories), len(positions)
    if shared is None:
        shared = shared_rest(catalogue, weights, positions, now)
    result = np.empty((n, m), dtype=np.float64)
    result[:] = shared[None, :]
    unknown: list[tuple[int, float]] = []
    for name, weight in personal_weights(weights):
        if name == "category":
            rows = np.flatnonzero(categories.any(axis=1))
            if len(rows):
                codes = catalogue.category[positions]
                result[rows] += weight * categories[rows][:, codes]
        elif name == "budget":
            rows = np.flatnonzero(np.isfinite(users.budget[picked]))
            if len(rows):
                price = catalogue.price[positions][None, :]
                budget = users.budget[picked][rows][:, None]
                result[rows] += weight * within_budget(price, budget)
        elif name == "nearby":
            city = users.city[picked]
            rows = np.flatnonzero(city >= 0)
            if len(rows):
                event_city = catalogue.city[positions]
                near = catalogue.proximity[city[rows]][:, np.maximum(event_city, 0)]
                result[rows] += weight * np.where(event_city[None, :] >= 0, near, 0.0)
        elif name == "new":
            rows = np.flatnonzero(np.diff(users.history.indptr)[picked] > 0)
            if len(rows):
                result[rows] += weight * catalogue.new[positions][None, :]
        elif name in FEATURES:
            unknown.append((FEATURES.index(name), weight))
    if unknown:
        block = feature_block(catalogue, users, positions, now, user)
        for column, weight in unknown:
            result += weight * block[:, :, column]
    # The text features last, in TEXT_FEATURES' order: the top-k adds them in that order.
    for name in TEXT_FEATURES:
        weight = float(weights.get(name, 0.0))
        if weight == 0.0:
            continue
        profile = users.history if name == "content" else users.stated
        rows = np.flatnonzero(np.diff(profile.indptr)[picked] > 0)
        if len(rows):
            cosines = text_cosines(catalogue.tfidf, profile, positions, rows + first)
            result[rows] += weight * np.clip(cosines, 0.0, 1.0)
    return result


def csr_pair_dots(
    indptr: npt.NDArray[np.integer[Any]],
    indices: npt.NDArray[np.integer[Any]],
    data: npt.NDArray[np.floating[Any]],
    profiles: npt.NDArray[np.float64],
    profile_rows: npt.ArrayLike,
    rows: npt.ArrayLike,
    columns: npt.NDArray[np.int64] | None = None,
) -> npt.NDArray[np.float64]:
    """:func:`csr_row_dots` of each row ``rows[i]`` against its own dense profile
    ``profiles[profile_rows[i]]``: the same products, summed in the same order.

    ``columns``: the profiles' column of each term (profiles over a few terms, one
    column of zeros for every other term), when they are not over every term."""
    rows = np.asarray(rows, dtype=np.int64)
    starts, stops = indptr[rows], indptr[rows + 1]
    lengths = stops - starts
    offsets = ranges(starts, stops)
    owner = np.repeat(np.arange(len(rows)), lengths)
    # One flat gather from the profiles (a 2-D fancy index costs a third more).
    flat = np.repeat(np.asarray(profile_rows, dtype=np.int64) * profiles.shape[1], lengths)
    terms = indices[offsets]
    flat += terms if columns is None else columns[terms]
    products = data[offsets].astype(np.float64, copy=False) * profiles.ravel()[flat]
    return np.asarray(np.bincount(owner, weights=products, minlength=len(rows)), dtype=np.float64)
