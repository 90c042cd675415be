"""The items of a response: the trending fallback, and why each personalised item is there."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from eventrec.model.hybrid_features import stated_text
from eventrec.model.records import TYPE_NAMES
from eventrec.model.served import profile_trending
from eventrec.serving.catalog import top_positions
from eventrec.serving.scoring import Answer
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


def _verb(kind: int) -> str:
    return VERBS.get(kind, TYPE_NAMES.get(kind, "liked"))


def _days_phrase(seconds: float) -> str:
    days = int(max(seconds, 0.0) // 86_400)
    if days == 0:
        return "starts today"
    if days == 1:
        return "starts tomorrow"
    return f"starts in {days} days"


def explain_hybrid(state: ServingState, answer: Answer) -> list[str]:
    """For each item the blend chose, a reason naming the signal that added most to its
    score (:meth:`HybridBlend.strongest`), with the right interaction and object.

    The user's own events are looked up once per answer, and the items explained by the
    collaborative or the content signal are matched against them in one product each."""
    hybrid = state.hybrid
    positions = [] if answer.positions is None else answer.positions.tolist()
    if hybrid is None or answer.features is None or not positions:
        return ["recommended for you"] * len(positions)
    batch, row = answer.features, answer.signal_row
    strongest = hybrid.blend.strongest(batch.of(row))
    own = batch.own(row)
    matched: dict[int, str] = {}
    chosen = [p for p, s in zip(positions, strongest, strict=True) if s == "collaborative"]
    if chosen:
        matched.update(zip(chosen, _collaborative_reasons(state, chosen, own), strict=True))
    columns = [c for c, s in enumerate(strongest) if s == "content"]
    if columns:
        chosen = [positions[c] for c in columns]
        similar = batch.similar(row)[:, columns]
        matched.update(zip(chosen, _content_reasons(state, chosen, own, similar), strict=True))
    return [
        matched[position]
        if signal in ("collaborative", "content")
        else _reason(state, answer, position, signal)
        for position, signal in zip(positions, strongest, strict=True)
    ]


def _title(state: ServingState, index: int, position: int) -> str:
    if position >= 0:
        return str(state.catalog.documents[position]["title"])
    return state.store_event_ids[index] if index < len(state.store_event_ids) else "an event"


def _reason(state: ServingState, answer: Answer, position: int, signal: str | None) -> str:
    """The reason of an item whose strongest signal is neither collaborative nor content."""
    catalog = state.catalog
    doc = catalog.documents[position]
    profile = answer.profile or {}
    if signal == "profile":
        return _profile_reason(state, position, answer.searches, profile)
    if signal == "category":
        return f"{doc['category']}, a category you like"
    if signal == "trending":
        return f"trending in {doc['city']}"
    if signal == "soon":
        return _days_phrase(float(catalog.starts_at[position]) - answer.clock)
    if signal == "fresh":
        return f"just announced in {doc['city']}"
    if signal == "budget":
        return "within your budget"
    if signal == "nearby":
        city = str(profile.get("city") or "")
        if city.casefold() == str(doc["city"]).casefold():
            return "in your city"
        return f"near you, in {doc['city']}"
    if signal == "new":
        return "new: nobody has booked it yet"
    return "recommended for you"


def _collaborative_reasons(
    state: ServingState, positions: list[int], own: list[tuple[int, int, int]]
) -> list[str]:
    """Per item: the user's event whose vector adds most to the item's score, of the item's
    category when one of those adds anything (a comedy night does not explain a concert)."""
    model, factors = state.model, state.catalog_factors
    if model is None or factors is None:
        return ["recommended for you"] * len(positions)
    n_model = model.item_factors.shape[0]
    documents = state.catalog.documents
    items = np.asarray(positions, dtype=np.int64)
    item_index = state.catalog_model_index[items]
    named = [(e, p, k) for e, p, k in own if e < n_model]
    if not named:
        return ["liked by people with tastes like yours"] * len(positions)
    events = np.array([e for e, _, _ in named], dtype=np.int64)
    # (own events x items): what each own event adds to each item's collaborative score.
    contributions = model.item_factors[events] @ factors[items].T
    categories = [documents[p]["category"] if p >= 0 else None for _, p, _ in named]
    reasons = []
    for column, position in enumerate(positions):
        added = contributions[:, column]
        other = events != item_index[column]
        category = documents[position]["category"]
        same = np.array([c is not None and c == category for c in categories])
        reason = "liked by people with tastes like yours"
        for pool in (other & same & (added > 0), other & (added > 0)):
            if pool.any():
                best = int(np.flatnonzero(pool)[np.argmax(added[pool])])
                e, p, kind = named[best]
                reason = f"because you {_verb(kind)} {_title(state, e, p)}"
                break
        reasons.append(reason)
    return reasons


def _content_reasons(
    state: ServingState,
    positions: list[int],
    own: list[tuple[int, int, int]],
    similarity: npt.NDArray[np.float64],
) -> list[str]:
    """Per item: the user's event most like it in text, named with the interaction it had
    (the same venue said so). ``similarity``: text cosines of the user's events in the
    catalogue (in ``own``'s order) with the items."""
    documents = state.catalog.documents
    known = [(e, p, k) for e, p, k in own if p >= 0]
    if known:
        rows = np.array([p for _, p, _ in known], dtype=np.int64)
        similarity = similarity.copy()
        similarity[rows[:, None] == np.asarray(positions)[None, :]] = -np.inf  # not itself
    found: list[bool] = [False] * len(positions)
    best: list[int] = [0] * len(positions)
    if known:
        found = [bool(x) for x in np.asarray(np.isfinite(similarity).any(axis=0))]
        best = [int(x) for x in similarity.argmax(axis=0)]
    reasons = []
    for position, matched, row in zip(positions, found, best, strict=True):
        if not matched:
            itself = [k for _, p, k in own if p == position]
            reasons.append(
                f"you {_verb(itself[0])} this event" if itself else "like events you liked"
            )
            continue
        e, p, kind = known[row]
        title = _title(state, e, p)
        venue = documents[position].get("venue")
        if venue and venue == documents[p].get("venue"):
            reasons.append(f"same venue as {title} you {_verb(kind)}")
        else:
            reasons.append(f"like {title} you {_verb(kind)}")
    return reasons


def _profile_reason(
    state: ServingState, position: int, searches: Sequence[str], profile: Mapping[str, Any]
) -> str:
    """The search (newest first), interest or category the event matches."""
    hybrid = state.hybrid
    assert hybrid is not None
    row = hybrid.catalogue.tfidf[position]
    for query in searches:
        if (hybrid.text.transform([query]) @ row.T).sum() > 0:
            return f"matches your search '{query}'"
    for interest in profile.get("interests") or []:
        if (hybrid.text.transform([stated_text({"interests": [interest]})]) @ row.T).sum() > 0:
            return f"matches your interest '{interest}'"
    category = state.catalog.documents[position]["category"]
    liked = {str(c).casefold() for c in profile.get("preferred_categories") or []}
    if str(category).casefold() in liked:
        return f"{category}, a category you like"
    return "matches what you told us you like"
