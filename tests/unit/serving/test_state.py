"""Which of a user's events serving hides: booked (not cancelled), dismissed, rated."""

from __future__ import annotations

import numpy as np
from tests.unit.serving.test_catalog import event

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
from eventrec.serving.state import ServingState


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
