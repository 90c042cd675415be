"""Which of a user's events serving hides: booked (not cancelled), dismissed, rated."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.serving.test_catalog import event

from eventrec.model.aggregate import InteractionWeights, aggregate
from eventrec.model.records import (
    TYPE_BOOKING,
    TYPE_BOOKING_CANCELLED,
    TYPE_DISMISS,
    TYPE_RATING,
    TYPE_SAVE,
    TYPE_VIEW,
    InteractionLog,
)
from eventrec.serving.catalog import Catalog
from eventrec.serving.state import STRENGTH, ServingState


def test_hidden_events_and_strongest_interactions() -> None:
    names = ["viewed", "saved", "booked", "cancelled", "dismissed", "rated"]
    catalog = Catalog.from_documents({n: event(n, "Colombo", "music", 100, 20) for n in names})
    rows = InteractionLog.from_columns(
        user=np.zeros(8, dtype=np.int32),
        event=np.array([0, 1, 2, 3, 3, 4, 5, 0]),
        kind=np.array(
            [
                TYPE_VIEW,
                TYPE_SAVE,
                TYPE_BOOKING,
                TYPE_BOOKING,
                TYPE_BOOKING_CANCELLED,
                TYPE_DISMISS,
                TYPE_RATING,
                TYPE_VIEW,
            ]
        ),
        value=np.array([1, 1, 1, 1, 1, 1, 4, 1]),
        time=np.arange(8) + 1_800_000_000,
        aux=np.array([0, 0, 7, 9, 9, 0, 0, 0]),
    )
    state = ServingState(
        catalog=catalog,
        model=None,
        catalog_factors=None,
        catalog_model_index=np.full(len(names), -1),
        trending=np.zeros(len(names), dtype=np.float32),
        store_event_ids=names,
        catalog_version=1,
        model_version=None,
        built_at=0.0,
    )
    vector, hidden, strongest = state.user_vector(rows.records)
    assert vector is None
    assert {catalog.event_ids[p] for p in hidden.tolist()} == {"booked", "dismissed", "rated"}
    assert strongest[0][0] == TYPE_VIEW
    assert strongest[2][0] == TYPE_BOOKING
    assert strongest[5][0] == TYPE_RATING


def reference_user_vector(
    state: ServingState, records: np.ndarray
) -> tuple[np.ndarray | None, set[int], dict[int, tuple[int, int]]]:
    """One user at a time, record by record: what the batched fold-in must equal."""
    result = aggregate(
        InteractionLog(
            np.zeros(len(records), dtype=np.int32),
            records,
            1,
            max(int(records["event"].max()) + 1, 1) if len(records) else 1,
        ),
        state.weights,
        now=time.time(),
    )

    def position(event: int) -> int | None:
        if event >= len(state.store_event_ids):
            return None
        return state.catalog.position.get(state.store_event_ids[event])

    hidden = {
        p for p in (position(e) for e in result.hidden.tocsr().indices.tolist()) if p is not None
    }
    strongest: dict[int, tuple[int, int]] = {}
    for index, kind, moment in zip(
        records["event"].tolist(), records["type"].tolist(), records["time"].tolist(), strict=True
    ):
        if kind in STRENGTH:
            best = strongest.get(index)
            if best is None or STRENGTH[kind] >= STRENGTH[best[0]]:
                strongest[index] = (kind, moment)
    model = state.model
    assert model is not None
    confidence = result.confidence.tocsr()
    vector = np.zeros(model.item_factors.shape[1], dtype=np.float64)
    for index, value in zip(confidence.indices.tolist(), confidence.data.tolist(), strict=True):
        if index < model.item_factors.shape[0]:
            vector += value * model.column_scale[index] * model.item_factors[index]
        else:
            found = position(index)
            if found is not None and state.catalog_factors is not None:
                vector += value * state.catalog_factors[found]
    return (vector if vector.any() else None), hidden, strongest


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), n_users=st.integers(1, 12))
def test_batched_fold_in_equals_one_user_at_a_time(seed: int, n_users: int) -> None:
    rng = np.random.default_rng(seed)
    # Store events 0-7 are in the model; 8-9 are newer (catalog only); 10 is unknown.
    names = [f"e{i}" for i in range(10)]
    catalog = Catalog.from_documents({n: event(n, "Colombo", "music", 100, 20) for n in names})
    model: Any = SimpleNamespace(
        item_factors=rng.standard_normal((8, 4)).astype(np.float32),
        column_scale=rng.uniform(0.5, 2, 8).astype(np.float32),
        model=SimpleNamespace(weights_=InteractionWeights()),
    )
    state = ServingState(
        catalog=catalog,
        model=model,
        catalog_factors=rng.standard_normal((10, 4)).astype(np.float32),
        catalog_model_index=np.array([*range(8), -1, -1]),
        trending=np.zeros(10, dtype=np.float32),
        store_event_ids=names,
        catalog_version=1,
        model_version="v1",
        built_at=0.0,
    )
    kinds = [TYPE_VIEW, TYPE_SAVE, TYPE_BOOKING, TYPE_BOOKING_CANCELLED, TYPE_DISMISS, TYPE_RATING]
    rows = []
    for _ in range(n_users):
        n = int(rng.integers(0, 25))
        rows.append(
            InteractionLog.from_columns(
                user=np.zeros(n, dtype=np.int32),
                event=rng.integers(0, 11, n),
                kind=rng.choice(kinds, n),
                value=rng.integers(1, 6, n),
                time=1_800_000_000 + rng.integers(0, 10, n),
                aux=rng.integers(0, 3, n),
            ).records
        )
    batched = state.user_vectors(rows)
    for records, (vector, hidden, strongest) in zip(rows, batched, strict=True):
        expected_vector, expected_hidden, expected_strongest = reference_user_vector(state, records)
        assert set(hidden.tolist()) == expected_hidden
        assert strongest == expected_strongest
        if expected_vector is None:
            assert vector is None
        else:
            assert vector is not None
            np.testing.assert_allclose(vector, expected_vector, rtol=1e-4, atol=1e-5)
