"""Catalog views that need no user: events like one event, and what is trending."""

from __future__ import annotations

import time
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, HTTPException, Path, Query

from eventrec.serving.catalog import Filters, top_positions
from eventrec.serving.deps import LimitQuery, RuntimeDep, current_state
from eventrec.serving.items import trending_items

router = APIRouter()


@router.get("/events/{event_id}/similar", summary="Events like this one")
async def similar(
    runtime: RuntimeDep,
    event_id: Annotated[str, Path(min_length=1, max_length=128)],
    limit: LimitQuery = 10,
) -> dict[str, Any]:
    state = current_state(runtime)
    position = state.catalog.position.get(event_id)
    if position is None:
        raise HTTPException(404, detail=f"unknown event {event_id!r}")
    mask = state.catalog.eligible(Filters(), time.time())
    mask[position] = False
    if state.catalog_factors is None:
        same = state.catalog.category == state.catalog.category[position]
        strategy, items = trending_items(state, mask & same, limit, None)
        return {
            "event_id": event_id,
            "model_version": None,
            "strategy": strategy,
            "items": items,
        }
    factors = state.catalog_factors
    norms = np.linalg.norm(factors, axis=1) + 1e-9
    scores = (factors @ factors[position]) / (norms * norms[position])
    positions = top_positions(scores, mask, limit)
    title = state.catalog.documents[position]["title"]
    items = [
        state.catalog.item(p, float(scores[p]), f"similar to {title}") for p in positions.tolist()
    ]
    return {
        "event_id": event_id,
        "model_version": state.model_version,
        "strategy": "item_vectors",
        "items": items,
    }


@router.get("/popular", summary="What is trending among upcoming events")
async def popular(
    runtime: RuntimeDep,
    limit: LimitQuery = 10,
    city: Annotated[list[str] | None, Query(max_length=20)] = None,
    category: Annotated[list[str] | None, Query(max_length=20)] = None,
) -> dict[str, Any]:
    state = current_state(runtime)
    filters = Filters(
        cities=frozenset(city) if city else None,
        categories=frozenset(category) if category else None,
    )
    mask = state.catalog.eligible(filters, time.time())
    strategy, items = trending_items(state, mask, limit, None)
    return {"model_version": state.model_version, "strategy": strategy, "items": items}
