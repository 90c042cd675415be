"""Content features of events and a linear map from them to event factor vectors.

Most events are newer than the last refit, so they have no collaborative vector. A ridge
map fitted on the events that do have one gives every event a vector from its content at
once; :func:`blend` hands over to the collaborative vector as interactions arrive.

Event metadata input
--------------------
A sequence of plain dicts (one per event, in event-index order), with optional keys:

=================  ===================  =============================================
key                type                 feature
=================  ===================  =============================================
``category``       str                  one-hot ``category=<value>``
``tags``           iterable of str      multi-hot ``tag=<value>``
``city``           str                  one-hot ``city=<value>``
``price``          float                one-hot ``price_band=<i>`` (catalogue quantiles)
``starts_at``      seconds since epoch  one-hot ``weekday=<0..6>`` (Monday = 0) and
                                        ``time_of_day=<night|morning|afternoon|evening>``
``utc_offset_s``   int                  added to ``starts_at`` for local weekday/time
=================  ===================  =============================================

Missing keys or ``None`` give no feature. Every event also has the constant ``bias``
feature, which lets the (intercept-free) ridge map learn the mean vector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model.errors import ModelFitError

__all__ = ["ContentMap", "EventFeaturizer", "blend"]

BIAS_FEATURE = "bias"
SECONDS_PER_DAY = 86400
# Local hours at which the night, morning, afternoon and evening buckets start.
TIME_OF_DAY_STARTS = ((0, "night"), (6, "morning"), (12, "afternoon"), (17, "evening"))


def _time_of_day(hour: int) -> str:
    name = TIME_OF_DAY_STARTS[0][1]
    for start, bucket in TIME_OF_DAY_STARTS:
        if hour >= start:
            name = bucket
    return name


def _normalise(text: Any) -> str:
    return str(text).strip().lower()


class EventFeaturizer:
    """Sparse one-hot / multi-hot content features of events (see the module docstring).

    Parameters
    ----------
    n_price_bands : int
        Price bands, split at quantiles of the fitted catalogue's prices.
    min_count : int
        Values seen on fewer events than this at fit time get no feature.

    Attributes
    ----------
    vocabulary_ : list of str
        Feature names; feature ``i`` is column ``i``. Column 0 is ``bias``.
    price_edges_ : ndarray of shape (n_price_bands - 1,), float64
        Inner band edges; band ``i`` holds prices in ``[edges[i-1], edges[i])``.
    """

    def __init__(self, n_price_bands: int = 5, min_count: int = 1) -> None:
        self.n_price_bands = n_price_bands
        self.min_count = min_count

    def _tokens(self, event: Mapping[str, Any]) -> list[str]:
        tokens = [BIAS_FEATURE]
        for key in ("category", "city"):
            if event.get(key) is not None:
                tokens.append(f"{key}={_normalise(event[key])}")
        tags: Iterable[Any] = event.get("tags") or ()
        tokens.extend(sorted({f"tag={_normalise(tag)}" for tag in tags}))
        price = event.get("price")
        if price is not None and np.isfinite(float(price)) and hasattr(self, "price_edges_"):
            band = int(np.searchsorted(self.price_edges_, float(price), side="right"))
            tokens.append(f"price_band={band}")
        starts_at = event.get("starts_at")
        if starts_at is not None:
            local = int(starts_at) + int(event.get("utc_offset_s") or 0)
            # 1970-01-01 was a Thursday (weekday 3 with Monday = 0).
            tokens.append(f"weekday={(local // SECONDS_PER_DAY + 3) % 7}")
            hour = (local % SECONDS_PER_DAY) // 3600
            tokens.append(f"time_of_day={_time_of_day(hour)}")
        return tokens

    def fit(self, events: Sequence[Mapping[str, Any]]) -> EventFeaturizer:
        """Learn the vocabulary and price bands from the catalogue.

        Parameters
        ----------
        events : sequence of dict, length n_events

        Returns
        -------
        self
        """
        prices = np.array(
            [float(e["price"]) for e in events if e.get("price") is not None], dtype=np.float64
        )
        prices = prices[np.isfinite(prices)]
        if len(prices) and self.n_price_bands > 1:
            quantiles = np.linspace(0.0, 1.0, self.n_price_bands + 1)[1:-1]
            self.price_edges_ = np.unique(np.quantile(prices, quantiles))
        else:
            self.price_edges_ = np.zeros(0, dtype=np.float64)
        counts: dict[str, int] = {}
        for event in events:
            for token in self._tokens(event):
                counts[token] = counts.get(token, 0) + 1
        kept = sorted(t for t, n in counts.items() if n >= self.min_count and t != BIAS_FEATURE)
        self.vocabulary_: list[str] = [BIAS_FEATURE, *kept]
        self._index = {token: i for i, token in enumerate(self.vocabulary_)}
        return self

    def transform(self, events: Sequence[Mapping[str, Any]]) -> sp.csr_matrix:
        """Feature matrix of events; values unseen at fit time are ignored.

        Parameters
        ----------
        events : sequence of dict, length n_events

        Returns
        -------
        csr_matrix of shape (n_events, len(vocabulary_)), float32
        """
        indptr = [0]
        columns: list[int] = []
        for event in events:
            row = sorted({self._index[t] for t in self._tokens(event) if t in self._index})
            columns.extend(row)
            indptr.append(len(columns))
        return sp.csr_matrix(
            (np.ones(len(columns), dtype=np.float32), np.array(columns, dtype=np.int32), indptr),
            shape=(len(events), len(self.vocabulary_)),
        )

    def fit_transform(self, events: Sequence[Mapping[str, Any]]) -> sp.csr_matrix:
        """:meth:`fit` then :meth:`transform`."""
        return self.fit(events).transform(events)

    def to_dict(self) -> dict[str, Any]:
        """Plain values (JSON-serialisable) that :meth:`from_dict` restores."""
        return {
            "n_price_bands": self.n_price_bands,
            "min_count": self.min_count,
            "vocabulary": list(self.vocabulary_),
            "price_edges": [float(edge) for edge in self.price_edges_],
        }

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> EventFeaturizer:
        """A fitted featurizer from :meth:`to_dict` output."""
        featurizer = cls(int(values["n_price_bands"]), int(values["min_count"]))
        featurizer.price_edges_ = np.asarray(values["price_edges"], dtype=np.float64)
        featurizer.vocabulary_ = [str(token) for token in values["vocabulary"]]
        featurizer._index = {token: i for i, token in enumerate(featurizer.vocabulary_)}
        return featurizer


class ContentMap:
    """Ridge regression from content features to event factor vectors (no intercept).

    Parameters
    ----------
    alpha : float
        L2 penalty on the coefficients.

    Attributes
    ----------
    coef_ : ndarray of shape (n_features, n_factors), float32
        Event vector = features @ coef_.
    """

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = alpha

    def fit(
        self, features: sp.spmatrix | sp.sparray | np.ndarray, event_factors: np.ndarray
    ) -> ContentMap:
        """Fit the map on events that have collaborative vectors.

        Parameters
        ----------
        features : sparse matrix or ndarray of shape (n_events, n_features)
        event_factors : ndarray of shape (n_events, n_factors)

        Returns
        -------
        self
        """
        design = sp.csr_matrix(features, dtype=np.float64)
        targets = np.asarray(event_factors, dtype=np.float64)
        if design.shape[0] != targets.shape[0] or design.shape[0] == 0:
            raise ModelFitError(
                f"content map needs matching, non-empty rows: {design.shape} and {targets.shape}"
            )
        # Closed form on the small (n_features, n_features) Gram matrix.
        gram = np.asarray((design.T @ design).toarray())
        gram[np.diag_indices_from(gram)] += self.alpha
        coef = np.linalg.solve(gram, np.asarray(design.T @ targets))
        if not np.all(np.isfinite(coef)):
            raise ModelFitError("the content map has non-finite coefficients")
        self.coef_: npt.NDArray[np.float32] = coef.astype(np.float32)
        return self

    def predict(self, features: sp.spmatrix | sp.sparray | np.ndarray) -> npt.NDArray[np.float32]:
        """Event factor vectors from content.

        Parameters
        ----------
        features : sparse matrix or ndarray of shape (n_events, n_features)

        Returns
        -------
        ndarray of shape (n_events, n_factors), float32
        """
        return np.asarray(sp.csr_matrix(features, dtype=np.float32) @ self.coef_, dtype=np.float32)

    def to_arrays(self) -> dict[str, np.ndarray]:
        """The fitted map as plain arrays (store with ``np.savez``, load without pickle)."""
        return {"coef": self.coef_, "alpha": np.array(self.alpha, dtype=np.float64)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, np.ndarray]) -> ContentMap:
        """A fitted map from :meth:`to_arrays` output."""
        content_map = cls(alpha=float(arrays["alpha"]))
        content_map.coef_ = np.asarray(arrays["coef"], dtype=np.float32)
        return content_map


def blend(
    collab_vec: np.ndarray, content_vec: np.ndarray, n_interactions: npt.ArrayLike, k0: float = 10.0
) -> npt.NDArray[np.float32]:
    """Event vectors moving from content to collaborative as interactions arrive.

    ``w = n / (n + k0)``; result ``= w * collab_vec + (1 - w) * content_vec``: an event
    with ``k0`` interactions is half content, half collaborative.

    Parameters
    ----------
    collab_vec, content_vec : ndarray of shape (n_events, n_factors)
    n_interactions : array-like of shape (n_events,)
        Interactions behind each collaborative vector (0 for events unseen at fit time).
    k0 : float
        Interactions at which both sources weigh the same; must be positive.

    Returns
    -------
    ndarray of shape (n_events, n_factors), float32
    """
    if k0 <= 0:
        raise ValueError(f"k0 must be positive, not {k0}")
    count = np.maximum(np.asarray(n_interactions, dtype=np.float64), 0.0)
    weight = (count / (count + k0))[:, None]
    blended = weight * np.asarray(collab_vec) + (1.0 - weight) * np.asarray(content_vec)
    return np.asarray(blended, dtype=np.float32)
