"""The serving catalog: every filter, masking and ranking on a small known catalogue."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from eventrec.serving.catalog import Catalog, Filters, top_positions

NOW = datetime(2026, 12, 1, tzinfo=UTC).timestamp()


def event(
    event_id: str, city: str, category: str, price: float, day: int, **extra: object
) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "event_id": event_id,
            "title": f"title {event_id}",
            "category": category,
            "city": city,
            "price": {"amount": price, "currency": "LKR"},
            "starts_at": f"2026-12-{day:02d}T18:00:00+05:30",
            **extra,
        }
    ).encode()


@pytest.fixture
def catalog() -> Catalog:
    return Catalog.from_documents(
        {
            "a": event("a", "Colombo", "music", 1000, 5),
            "b": event("b", "Kandy", "music", 3000, 10),
            "c": event("c", "Galle", "sports", 500, 15),
            "d": event("d", "Colombo", "food", 8000, 20),
            "e": event("e", "Colombo", "music", 2000, 25, status="cancelled"),
            "f": event("f", "Kandy", "theatre", 1500, 28, status="sold_out"),
            "g": event("g", "Ella", "music", 0, 1),  # started already (2026-12-01 12:30Z)
        }
    )


def eligible(catalog: Catalog, **filters: object) -> set[str]:
    mask = catalog.eligible(Filters(**filters), NOW + 13 * 3600)  # type: ignore[arg-type]
    return {catalog.event_ids[i] for i in np.flatnonzero(mask)}


def test_upcoming_scheduled_only(catalog: Catalog) -> None:
    assert eligible(catalog) == {"a", "b", "c", "d"}


def test_city_and_category_filters_ignore_case(catalog: Catalog) -> None:
    assert eligible(catalog, cities=frozenset({"colombo"})) == {"a", "d"}
    assert eligible(catalog, categories=frozenset({"Music", "sports"})) == {"a", "b", "c"}
    assert eligible(catalog, cities=frozenset({"Atlantis"})) == set()


def test_price_and_date_filters(catalog: Catalog) -> None:
    assert eligible(catalog, min_price=1000, max_price=3000) == {"a", "b"}
    start = datetime(2026, 12, 9, tzinfo=UTC).timestamp()
    end = datetime(2026, 12, 16, tzinfo=UTC).timestamp()
    assert eligible(catalog, starts_after=start, starts_before=end) == {"b", "c"}


def test_exclude(catalog: Catalog) -> None:
    assert eligible(catalog, exclude=frozenset({"a", "zzz"})) == {"b", "c", "d"}


def test_top_positions_rank_by_score_then_position() -> None:
    scores = np.array([0.5, 0.9, 0.9, 0.1, 0.7])
    mask = np.array([True, True, True, True, False])
    assert top_positions(scores, mask, 3).tolist() == [1, 2, 0]
    assert top_positions(scores, mask, 10).tolist() == [1, 2, 0, 3]
    assert top_positions(scores, np.zeros(5, dtype=bool), 3).tolist() == []


@settings(max_examples=200, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    size=st.sampled_from([10, 2_000, 20_000, 60_000]),
    limit=st.integers(1, 50),
    eligible_share=st.sampled_from([0.0, 0.001, 0.05, 0.5, 1.0]),
    levels=st.sampled_from([3, 50, 0]),
)
def test_top_positions_equal_a_full_sort(
    seed: int, size: int, limit: int, eligible_share: float, levels: int
) -> None:
    """The sampled threshold is exact: same positions as sorting everything, ties included."""
    rng = np.random.default_rng(seed)
    # `levels` distinct values make many ties; 0 means continuous float32 scores.
    if levels:
        scores = rng.integers(0, levels, size).astype(np.float32)
    else:
        scores = rng.standard_normal(size).astype(np.float32)
    mask = rng.random(size) < eligible_share
    eligible = np.flatnonzero(mask)
    expected = sorted(eligible.tolist(), key=lambda p: (-scores[p], p))[:limit]
    assert top_positions(scores, mask, limit).tolist() == expected


def test_items_carry_what_the_api_returns(catalog: Catalog) -> None:
    item = catalog.item(catalog.position["b"], 0.25, "because you booked a")
    assert item == {
        "event_id": "b",
        "score": 0.25,
        "title": "title b",
        "category": "music",
        "city": "Kandy",
        "starts_at": "2026-12-10T18:00:00+05:30",
        "price": {"amount": 3000, "currency": "LKR"},
        "reason": "because you booked a",
    }
