"""A version as serving scores with it: the chosen model, its content map, trending.

:func:`fit_served` is what the trainer publishes (and validates before the cut) and what
the evaluation's ``eventrec`` row fits at each cut; :mod:`eventrec.model.served` is how
serving and the evaluation score with it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from eventrec.model.content import EventFeaturizer, event_content
from eventrec.model.content_map import ContentMap, catalog_vectors, fit_content_map
from eventrec.model.recommender import EventrecModel
from eventrec.model.records import InteractionLog
from eventrec.model.trending import trending_scores

__all__ = ["ServedModel", "fit_served"]


@dataclass
class ServedModel:
    """A fitted version as serving scores with it.

    Attributes
    ----------
    model : EventrecModel
    featurizer : EventFeaturizer
    content_map : ContentMap
    content_info : dict
    trending : ndarray of shape (n_events,), float32
        Trending at the fit's clock, with the trainer's half-life.
    """

    model: EventrecModel
    featurizer: EventFeaturizer
    content_map: ContentMap
    content_info: dict[str, Any]
    trending: npt.NDArray[np.float32]

    def content_vectors(
        self, documents: Sequence[bytes | str | Mapping[str, Any] | None]
    ) -> npt.NDArray[np.float32]:
        """Content-mapped vectors of events (None: no document, the bias feature only)."""
        features = self.featurizer.transform(
            [event_content(d) if d is not None else {} for d in documents]
        )
        return self.content_map.predict(features)

    def catalogue_vectors(
        self,
        documents: Sequence[bytes | str | Mapping[str, Any] | None],
        model_index: npt.NDArray[np.int64],
    ) -> npt.NDArray[np.float32]:
        """Blended vectors of catalogue events (``model_index``: -1 for newer events)."""
        return catalog_vectors(
            self.model.item_factors_,
            self.model.popularity_,
            model_index,
            self.content_vectors(documents),
        )


def fit_served(
    log: InteractionLog,
    documents: Sequence[bytes | str | Mapping[str, Any] | None],
    estimator: EventrecModel,
    now: float | None = None,
    trending_half_life_days: float = 7.0,
) -> ServedModel:
    """Fit ``estimator`` on ``log``, teach the content map, and compute trending at ``now``.

    Parameters
    ----------
    log : InteractionLog
    documents : sequence, one per event index of ``log``
        Each event's catalogue document (None: unknown).
    estimator : EventrecModel
        Unfitted (its hyperparameters chosen, e.g. by ``EventrecSearch.estimator()``).
    now : float, optional
        The fit's clock (decay and trending); default the log's latest time.
    """
    if now is None:
        now = log.latest_time()
    model = estimator.fit(log, now)
    featurizer, content_map, content_info = fit_content_map(
        documents, model.item_factors_, model.popularity_
    )
    trending = trending_scores(log, now, half_life_days=trending_half_life_days)
    return ServedModel(model, featurizer, content_map, content_info, trending)
