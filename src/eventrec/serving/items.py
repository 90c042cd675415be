"""The items of a response: the trending fallback, and why each personalised item is there."""

from __future__ import annotations

from typing import Any

import numpy as np

from eventrec.model.records import TYPE_NAMES
from eventrec.model.served import profile_trending
from eventrec.serving.catalog import top_positions
from eventrec.serving.state import VERBS, ServingState, UserProfileHint


def hide_own_events(
    state: ServingState, records: np.ndarray, mask: np.ndarray, hide_viewed: bool
) -> None:
    """Clear in ``mask`` the events a user's row hides: booked, dismissed, rated (and
    viewed or saved with ``hide_viewed``), as the personalised answer does."""
    _, hidden, _ = state.user_vector(records)
    mask[hidden] = False
    if hide_viewed:
        mask[state.touched_positions(records)] = False


def trending_items(
    state: ServingState,
    mask: np.ndarray,
    limit: int,
    profile: UserProfileHint | None,
) -> tuple[str, list[dict[str, Any]]]:
    catalog = state.catalog
    scores = state.trending.astype(np.float64)
    strategy = "trending"
    if profile is not None and (profile.city or profile.categories):
        strategy = "trending_profile"
        scores = profile_trending(
            state.trending,
            catalog.city,
            catalog.category,
            catalog.city_code.get(profile.city.casefold(), -1) if profile.city else None,
            catalog.codes(profile.categories, catalog.category_code),
        )
    if state.model is None:
        strategy += "_no_model"
    positions = top_positions(scores, mask, limit)
    items = []
    for position in positions.tolist():
        doc = catalog.documents[position]
        if profile is not None and profile.city and doc["city"] == profile.city:
            reason = f"trending in {doc['city']}, your city"
        elif profile is not None and doc["category"] in profile.categories:
            reason = f"popular {doc['category']}, a category you like"
        else:
            reason = f"trending in {doc['city']}"
        items.append(catalog.item(position, float(state.trending[position]), reason))
    return strategy, items


def explain(
    state: ServingState, positions: list[int], strongest: dict[int, tuple[int, int]]
) -> list[str]:
    """For each recommended position, the user's interaction that contributed most to it.

    "Because you viewed X" names another event when there is one (X itself says little);
    one product of the user's events against the recommended ones finds them all.
    """
    model = state.model
    catalog = state.catalog
    factors = state.catalog_factors
    if model is None or factors is None:
        return ["recommended for you"] * len(positions)
    n_model = model.item_factors.shape[0]
    events = np.array([e for e in strongest if e < n_model], dtype=np.int64)
    own = state.catalog_model_index[positions]
    named: list[bool] = [False] * len(positions)
    best_rows: list[int] = [0] * len(positions)
    if len(events):
        contributions = model.item_factors[events] @ factors[positions].T
        contributions[events[:, None] == own[None, :]] = -np.inf
        named = np.isfinite(contributions).any(axis=0).tolist()
        best_rows = np.argmax(contributions, axis=0).tolist()
    reasons = []
    for position, own_event, has_other, best_row in zip(
        positions, own.tolist(), named, best_rows, strict=True
    ):
        if not has_other:
            if own_event in strongest:
                kind, _ = strongest[own_event]
                reasons.append(f"you {VERBS.get(kind, 'liked')} this event")
            else:
                reasons.append("recommended for you")
            continue
        best = int(events[best_row])
        kind, _ = strongest[best]
        if own_event < 0:
            doc = catalog.documents[position]
            reasons.append(f"new in {doc['city']}, like events you {VERBS.get(kind, 'liked')}")
            continue
        name = state.store_event_ids[best] if best < len(state.store_event_ids) else None
        position_of_best = catalog.position.get(name) if name is not None else None
        title = (
            catalog.documents[position_of_best]["title"] if position_of_best is not None else name
        )
        reasons.append(f"because you {VERBS.get(kind, TYPE_NAMES.get(kind, 'liked'))} {title}")
    return reasons
