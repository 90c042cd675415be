"""``GET /recommendations``: a user's upcoming events, best first, with reasons."""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError

from eventrec.serving.catalog import Filters
from eventrec.serving.deps import FastJSONResponse, current_state
from eventrec.serving.experiments import Assignment, assign
from eventrec.serving.impressions import PendingImpression
from eventrec.serving.items import explain, explain_hybrid, trending_items
from eventrec.serving.reads import read_profile
from eventrec.serving.runtime import Runtime

router = APIRouter()


class RecommendationQuery(BaseModel):
    """The query of ``GET /recommendations``."""

    user_id: str = Field(min_length=1, max_length=128, description="The user to recommend to.")
    limit: int = Field(10, ge=1, le=50, description="How many events to return.")
    city: list[str] | None = Field(None, max_length=20, description="Only these cities.")
    category: list[str] | None = Field(None, max_length=20, description="Only these categories.")
    min_price: float | None = Field(None, ge=0, description="Lowest ticket price.")
    max_price: float | None = Field(None, ge=0, description="Highest ticket price.")
    starts_after: datetime | None = Field(None, description="Starting at or after (with zone).")
    starts_before: datetime | None = Field(None, description="Starting at or before (with zone).")
    exclude: list[str] | None = Field(None, max_length=200, description="Event ids to leave out.")


_LIST_PARAMETERS = frozenset({"city", "category", "exclude"})


def _recommendation_query(request: Request) -> RecommendationQuery:
    """The query validated as one model, errors exactly as FastAPI reports query errors.

    Parsed here rather than by FastAPI's query-model dependency, which costs more than
    the rest of a request's Python; the OpenAPI parameters come from the same model.
    """
    params = request.query_params
    data: dict[str, Any] = {}
    for name in RecommendationQuery.model_fields:
        if name in params:
            data[name] = params.getlist(name) if name in _LIST_PARAMETERS else params[name]
    try:
        return RecommendationQuery.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise RequestValidationError(
            [{**error, "loc": ("query", *error["loc"])} for error in errors]
        ) from None


def _query_parameters(model: type[BaseModel]) -> list[dict[str, Any]]:
    """OpenAPI ``parameters`` of a model's fields, as query parameters."""
    schema = model.model_json_schema()
    required = set(schema.get("required", ()))
    return [
        {
            "name": name,
            "in": "query",
            "required": name in required,
            "description": field.get("description", ""),
            "schema": {k: v for k, v in field.items() if k != "description"},
        }
        for name, field in schema["properties"].items()
    ]


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise HTTPException(422, detail="starts_after/starts_before need a time zone")
    return value.timestamp()


@router.get(
    "/recommendations",
    summary="Upcoming events for one user, best first",
    openapi_extra={"parameters": _query_parameters(RecommendationQuery)},
)
async def recommendations(request: Request) -> JSONResponse:
    runtime: Runtime = request.app.state.runtime
    query = _recommendation_query(request)
    user_id = query.user_id
    limit = query.limit
    if (
        query.min_price is not None
        and query.max_price is not None
        and query.min_price > query.max_price
    ):
        raise HTTPException(422, detail="min_price must not exceed max_price")
    filters = Filters(
        cities=frozenset(query.city) if query.city else None,
        categories=frozenset(query.category) if query.category else None,
        min_price=query.min_price,
        max_price=query.max_price,
        starts_after=_epoch(query.starts_after),
        starts_before=_epoch(query.starts_before),
        exclude=frozenset(query.exclude or ()),
    )
    state = current_state(runtime)
    assignment = assign(runtime.caches.experiments, user_id)
    if assignment is not None:
        state = runtime.caches.state_for(assignment.model_version, state, assignment.hybrid)
    if not runtime.settings.serving_hybrid:
        state = state.collaborative_only()
    answer = await runtime.scorer.recommend(state, user_id, filters, limit)
    forced_trending = assignment is not None and assignment.strategy == "trending"
    if answer.positions is not None and answer.scores is not None and not forced_trending:
        positions = answer.positions.tolist()
        # The blend answers a user with a profile or searches but no usable row too.
        strategy = "personalised" if answer.personal else "hybrid_profile"
        if answer.signals is not None:
            reasons = explain_hybrid(state, answer)
        else:
            reasons = explain(state, positions, answer.strongest or {})
        items = [
            state.catalog.item(p, score, reason)
            for p, score, reason in zip(positions, answer.scores.tolist(), reasons, strict=True)
        ]
    else:
        # What the row hides is already masked (answer_rows), also for short rows.
        mask = answer.mask
        if mask is None:
            mask = state.catalog.eligible(filters, time.time())
        # A variant of plain trending ignores the profile too (what must not be shown stays hidden).
        profile = (
            None
            if forced_trending
            else await read_profile(runtime.clients, runtime.caches, user_id)
        )
        strategy, items = trending_items(state, mask, limit, profile)
    request_id = uuid.uuid4().hex
    record_impression(
        runtime, request_id, user_id, state.model_version, strategy, items, assignment
    )
    # Plain JSON types already: skip FastAPI's recursive encoder on the hot path.
    body: dict[str, Any] = {
        "request_id": request_id,
        "user_id": user_id,
        "model_version": state.model_version,
        "strategy": strategy,
        "items": items,
    }
    if assignment is not None:
        body["experiment"] = {
            "name": assignment.experiment.name,
            "variant": assignment.variant_name,
        }
    return FastJSONResponse(body)


def record_impression(
    runtime: Runtime,
    request_id: str,
    user_id: str,
    model_version: str | None,
    strategy: str,
    items: list[dict[str, Any]],
    assignment: Assignment | None,
) -> None:
    """Queue the response as an impression; the sender's thread encodes it
    (``serving.impressions.encode``)."""
    runtime.impressions.offer(
        PendingImpression(
            request_id,
            user_id,
            assignment.experiment.name if assignment else None,
            assignment.experiment.code if assignment else 0,
            assignment.variant_name if assignment else None,
            assignment.variant_index if assignment else 0,
            model_version,
            strategy,
            [item["event_id"] for item in items],
            time.time(),
        )
    )
