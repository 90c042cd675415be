"""The content map: vectors for events from their content, blended with collaborative ones.

Most events are newer than the last refit, so they have no collaborative vector. A ridge
map fitted on the events that do have one gives every event a vector from its content at
once; :func:`blend` hands over to the collaborative vector as interactions arrive.
:func:`fit_content_map` teaches a version's map and :func:`catalog_vectors` gives the
vectors a catalogue is scored with: the trainer, serving and the evaluation share both.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from eventrec.model.content import EventFeaturizer, event_content
from eventrec.model.errors import ModelFitError

__all__ = [
    "CONTENT_BLEND_K0",
    "CONTENT_MIN_USERS",
    "ContentMap",
    "blend",
    "catalog_vectors",
    "fit_content_map",
]

# Interactions at which an event's collaborative vector weighs as much as its content one.
CONTENT_BLEND_K0 = 10.0
# Events need this many users before their collaborative vector teaches the content map.
CONTENT_MIN_USERS = 3


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


def fit_content_map(
    documents: Sequence[bytes | str | Mapping[str, Any] | None],
    item_factors: np.ndarray,
    popularity: np.ndarray,
) -> tuple[EventFeaturizer, ContentMap, dict[str, Any]]:
    """The content featurizer and ridge map of a version, taught on well-known events.

    Parameters
    ----------
    documents : sequence of event JSON (or dict, or None when unknown), one per event index
    item_factors : ndarray of shape (n_events, n_factors)
    popularity : ndarray of shape (n_events,)
        Users per event; events with at least :data:`CONTENT_MIN_USERS` teach the map.
    """
    contents = []
    for document in documents:
        try:
            contents.append(event_content(document) if document is not None else {})
        except (ValueError, TypeError):
            contents.append({})
    featurizer = EventFeaturizer(min_count=2)
    features = featurizer.fit_transform(contents)
    teaching = np.flatnonzero(popularity >= CONTENT_MIN_USERS)
    if len(teaching) < 2:
        teaching = np.flatnonzero(popularity > 0)
    content_map = ContentMap(alpha=1.0).fit(features[teaching], item_factors[teaching])
    described = sum(1 for c in contents if c)
    return featurizer, content_map, {"events_described": described, "events_taught": len(teaching)}


def catalog_vectors(
    item_factors: np.ndarray,
    popularity: np.ndarray,
    model_index: npt.NDArray[np.int64],
    content_vectors: np.ndarray,
    k0: float = CONTENT_BLEND_K0,
) -> npt.NDArray[np.float32]:
    """The vector each catalogue event is scored with.

    Parameters
    ----------
    item_factors : ndarray of shape (n_model_events, n_factors)
    popularity : ndarray of shape (n_model_events,)
    model_index : ndarray of shape (n_catalogue,), int64
        Each catalogue event's index in the model (-1: newer than the model).
    content_vectors : ndarray of shape (n_catalogue, n_factors)
        The content map's vectors of the catalogue's events.

    Returns
    -------
    ndarray of shape (n_catalogue, n_factors), float32
    """
    known = model_index >= 0
    collaborative = np.zeros_like(content_vectors)
    collaborative[known] = item_factors[model_index[known]]
    interactions = np.zeros(len(model_index), dtype=np.float64)
    interactions[known] = popularity[model_index[known]]
    return blend(collaborative, content_vectors, interactions, k0=k0)
