"""Content features of events: what :mod:`eventrec.model.content_map` maps to vectors.

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

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import numpy as np
import scipy.sparse as sp

__all__ = ["EventFeaturizer", "event_content"]

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


def event_content(document: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
    """The content-feature input of :class:`EventFeaturizer` from a stored event's JSON."""
    event = json.loads(document) if isinstance(document, bytes | str) else dict(document)
    content: dict[str, Any] = {
        "category": event.get("category"),
        "tags": event.get("tags") or [],
        "city": event.get("city"),
    }
    price = event.get("price")
    if isinstance(price, Mapping):
        content["price"] = price.get("amount")
    starts_at = event.get("starts_at")
    if starts_at:
        moment = datetime.fromisoformat(str(starts_at).replace("Z", "+00:00"))
        content["starts_at"] = int(moment.timestamp())
        offset = moment.utcoffset()
        content["utc_offset_s"] = int(offset.total_seconds()) if offset else 0
    return content
