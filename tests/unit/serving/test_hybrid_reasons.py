"""Serving with the learned hybrid: the blend answers users with a row, a profile or
searches, and each reason names the signal that added most, with the right interaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

from eventrec.model.aggregate import InteractionWeights
from eventrec.model.blend import HybridBlend
from eventrec.model.hybrid_features import FEATURES, TextModel, event_text
from eventrec.model.records import TYPE_BOOKING, TYPE_SAVE, InteractionLog
from eventrec.serving.catalog import Catalog, Filters
from eventrec.serving.items import explain, explain_hybrid
from eventrec.serving.scoring import answer_rows
from eventrec.serving.state import HybridState, ServingState, warm_compiled

NOW = datetime(2026, 11, 30, 12, tzinfo=UTC)
EVENTS = {
    "a": ("Jazz night", "music", "Colombo", "Blue Room", 20, 2000),
    "b": ("Comedy cellar", "comedy", "Kandy", "Cellar", 25, 9000),
    "c": ("Jazz brunch", "music", "Colombo", "Blue Room", 3, 1500),
    "d": ("Stand-up special", "comedy", "Kandy", "Hall", 40, 3000),
    "e": ("Rock fest", "music", "Galle", "Beach", 60, 7000),
}
NAMES = list(EVENTS)
# a and e are in one taste cluster, b, c, d in another (c is closest to b, not a).
FACTORS = np.array([[1.0, 0.0], [0.0, 1.0], [0.2, 1.0], [0.1, 0.9], [0.9, 0.1]], dtype=np.float32)


def _document(event_id: str) -> bytes:
    title, category, city, venue, days, price = EVENTS[event_id]
    starts = NOW + timedelta(days=days, hours=1)
    return json.dumps(
        {
            "schema_version": 1,
            "event_id": event_id,
            "title": title,
            "category": category,
            "city": city,
            "venue": venue,
            "tags": [title.split()[0].lower()],
            "price": {"amount": price, "currency": "LKR"},
            "starts_at": starts.isoformat(),
            "published_at": (NOW - timedelta(days=2)).isoformat(),
        }
    ).encode()


def _blend(**weights: float) -> HybridBlend:
    blend = HybridBlend()
    blend.weights_ = np.array([weights.get(name, 0.0) for name in FEATURES])
    blend.intercept_ = 0.0
    blend.shares_ = dict.fromkeys(FEATURES, 1.0 / len(FEATURES))
    blend.n_pairs_ = 100
    return blend


def _state(blend: HybridBlend, interactions: list[int] | None = None) -> ServingState:
    catalog = Catalog.from_documents({n: _document(n) for n in NAMES})
    text = TextModel().fit([event_text(d) for d in catalog.documents])
    model: Any = SimpleNamespace(
        item_factors=FACTORS,
        column_scale=np.ones(len(NAMES), dtype=np.float32),
        model=SimpleNamespace(weights_=InteractionWeights()),
        blend=blend,
        text=text,
    )
    trending = np.array([1.0, 2.0, 3.0, 0.0, 50.0], dtype=np.float32)
    return ServingState(
        catalog=catalog,
        model=model,
        catalog_factors=FACTORS,
        catalog_model_index=np.arange(len(NAMES)),
        trending=trending,
        store_event_ids=NAMES,
        catalog_version=1,
        model_version="v1",
        built_at=0.0,
        hybrid=HybridState.build(
            blend, text, catalog, FACTORS, trending, NOW.timestamp(), 0.0, interactions
        ),
    )


def _row(events: list[int], kinds: list[int]) -> np.ndarray:
    n = len(events)
    return InteractionLog.from_columns(
        user=np.zeros(n, dtype=np.int32),
        event=np.array(events),
        kind=np.array(kinds),
        value=np.ones(n, dtype=np.int64),
        time=np.arange(n) + int(NOW.timestamp()) - 86_400,
        aux=np.zeros(n, dtype=np.int64),
    ).records


def _reasons(
    state: ServingState,
    records: np.ndarray | None,
    profile: dict[str, Any] | None = None,
    searches: list[str] | None = None,
    limit: int = 2,
) -> dict[str, str]:
    answers, _ = answer_rows(
        state,
        [records],
        [Filters()],
        [limit],
        NOW.timestamp(),
        profiles=[profile],
        searches=[searches or []],
    )
    answer = answers[0]
    assert answer.positions is not None
    names = [state.catalog.event_ids[p] for p in answer.positions.tolist()]
    return dict(zip(names, explain_hybrid(state, answer), strict=True))


def test_a_saved_event_is_named_as_saved_with_its_venue() -> None:
    state = _state(_blend(content=1.0))
    reasons = _reasons(state, _row([0], [TYPE_SAVE]), limit=2)
    # A saved event stays eligible (interest, not consumption) and says so.
    assert reasons == {"a": "you saved this event", "c": "same venue as Jazz night you saved"}


def test_a_comedy_history_does_not_explain_a_music_pick() -> None:
    state = _state(_blend(collaborative=1.0))
    records = _row([1, 0], [TYPE_BOOKING, TYPE_SAVE])
    # The factors alone would name the comedy booking (b is closest to c).
    answers, _ = answer_rows(state, [records], [Filters()], [3], NOW.timestamp())
    old = explain(state, [2], answers[0].strongest or {})
    assert old == ["because you booked Comedy cellar"]
    assert _reasons(state, records, limit=3)["c"] == "because you saved Jazz night"


def test_a_search_is_named_when_it_added_most() -> None:
    state = _state(_blend(profile=1.0))
    reasons = _reasons(state, None, searches=["jazz"], limit=2)
    assert set(reasons) == {"a", "c"}
    assert set(reasons.values()) == {"matches your search 'jazz'"}


def test_context_signals_name_the_place_the_budget_and_the_date() -> None:
    assert _reasons(_state(_blend(trending=1.0)), _row([1], [TYPE_BOOKING]), limit=1) == {
        "e": "trending in Galle"
    }
    kandy = _reasons(_state(_blend(nearby=1.0)), None, {"city": "Kandy"}, limit=2)
    assert kandy == {"b": "in your city", "d": "in your city"}
    budget = _reasons(_state(_blend(budget=1.0)), None, {"budget": {"max": 2500}}, limit=2)
    assert budget == {"a": "within your budget", "c": "within your budget"}
    soon = _reasons(_state(_blend(soon=1.0)), None, {"city": "Galle"}, limit=1)
    assert soon == {"c": "starts in 3 days"}


def test_a_never_touched_event_is_named_as_new_to_a_user_with_a_history() -> None:
    # Rock fest: nobody's record in the version; the others each have some.
    state = _state(_blend(new=1.0), interactions=[3, 5, 2, 1, 0])
    assert _reasons(state, _row([1], [TYPE_BOOKING]), limit=1) == {
        "e": "new: nobody has booked it yet"
    }
    # A user with no history is not pushed new events: here their city decides.
    assert "e" not in _reasons(
        _state(_blend(new=1.0, nearby=0.5), [3, 5, 2, 1, 0]), None, {"city": "Kandy"}, limit=2
    )


def test_a_hybrid_off_variant_scores_the_same_version_collaboratively() -> None:
    state = _state(_blend(content=1.0))
    records = _row([0], [TYPE_SAVE])
    blended, _ = answer_rows(state, [records], [Filters()], [2], NOW.timestamp())
    plain_state = state.collaborative_only()
    assert plain_state.hybrid is None
    assert state.collaborative_only() is plain_state  # made once per state
    plain, _ = answer_rows(plain_state, [records], [Filters()], [2], NOW.timestamp())
    assert plain[0].signals is None
    # Content alone ranks the other Blue Room jazz event second; the factors, Rock fest.
    names = [[state.catalog.event_ids[p] for p in a.positions.tolist()] for a in (*blended, *plain)]
    assert names == [["a", "c"], ["a", "e"]]


def test_a_user_nothing_is_known_about_is_left_to_trending() -> None:
    state = _state(_blend(collaborative=1.0, trending=1.0))
    answers, _ = answer_rows(state, [None], [Filters()], [3], NOW.timestamp(), profiles=[None])
    assert answers[0].positions is None


@pytest.mark.parametrize("warm", ["the version's hybrid", "the process at start"])
def test_after_warming_up_a_request_compiles_nothing(warm: str) -> None:
    from eventrec.model import hybrid_kernel, hybrid_kernel_features

    state = _state(
        _blend(collaborative=1.0, content=1.0, profile=1.0, category=1.0, budget=1.0, new=1.0)
    )
    assert state.hybrid is not None
    if warm == "the process at start":
        warm_compiled()  # a made-up catalogue: the same kinds of arrays as any version's
    else:
        state.hybrid.warm_up(NOW.timestamp())
    kernels = [
        hybrid_kernel._top_k,
        hybrid_kernel_features._pair_features,
        hybrid_kernel_features._group_similarities,
        hybrid_kernel._sparse_reach,
        hybrid_kernel_features._history_profiles,
    ]
    for kernel in kernels:
        kernel.disable_compile()  # a signature not compiled yet raises TypeError
    try:
        reasons = _reasons(
            state,
            _row([0, 1], [TYPE_SAVE, TYPE_BOOKING]),
            {"preferred_categories": ["music"], "budget": {"max": 2500}, "city": "Kandy"},
            searches=["jazz"],
            limit=3,
        )
    finally:
        for kernel in kernels:
            kernel.disable_compile(False)
    assert len(reasons) == 3


def test_an_event_touched_since_the_version_is_no_longer_new() -> None:
    import dataclasses

    state = _state(_blend(new=1.0), interactions=[3, 5, 2, 1, 0])
    hybrid = state.hybrid
    assert hybrid is not None
    assert hybrid.blocks is not None
    assert hybrid.with_touched(np.array([0, 1], dtype=np.int64)) is hybrid  # none was new
    touched = hybrid.with_touched(np.array([4], dtype=np.int64))
    assert touched.catalogue.new.tolist() == [0.0] * 5
    assert touched.blocks is not None
    assert not touched.blocks.new.any()
    assert hybrid.catalogue.new.tolist() == [0.0, 0.0, 0.0, 0.0, 1.0]  # left as it was
    reasons = _reasons(
        dataclasses.replace(state, hybrid=touched), _row([1], [TYPE_BOOKING]), limit=1
    )
    assert "new: nobody has booked it yet" not in reasons.values()
