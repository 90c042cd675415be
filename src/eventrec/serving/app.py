"""`eventrec serve`: the recommendation API.

Handlers are async and never block on a thread pool: a user's row comes from Redis over
an async connection, the requests that arrive together are scored in one float32 matrix
product (``serving.scoring``; BLAS limited to one thread), and the model and catalog are
reloaded on a background thread and swapped in whole.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any

import numpy as np
import orjson
import redis
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field, ValidationError
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from threadpoolctl import threadpool_limits

from eventrec.config import Settings, load_settings
from eventrec.logs import configure_logging
from eventrec.model.records import TYPE_NAMES
from eventrec.serving.catalog import Filters, top_positions
from eventrec.serving.rows import read_rows
from eventrec.serving.scoring import BatchScorer
from eventrec.serving.state import VERBS, ServingState, UserProfileHint, build_state
from eventrec.store.keys import Keys
from eventrec.store.store import Store, connect
from eventrec.store.versions import (
    ModelVersionError,
    activate_version,
    list_versions,
    request_training,
)

log = logging.getLogger("eventrec.serving")

RETRY_AFTER_SECONDS = "2"


class FastJSONResponse(JSONResponse):
    """JSON rendered by orjson: a recommendation's items encode ~10x faster than json."""

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


class Unavailable(Exception):  # noqa: N818 - an HTTP outcome, not an error class of the domain
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Runtime:
    """Resources of one serving process: settings, clients, and the current state."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.keys = Keys(settings.key_prefix)
        self.store = Store(connect(settings.redis_url, retries=1), settings.key_prefix)
        # redis-py types replies as bytes | str by connection options; ours are bytes.
        # One immediate retry: after a Redis restart each pooled connection fails once
        # (the server closed it) and reconnects; a Redis still down fails fast.
        self.redis: Any = aioredis.Redis.from_url(
            settings.redis_url,
            socket_timeout=2,
            socket_connect_timeout=2,
            retry=AsyncRetry(NoBackoff(), 1),
            retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        )
        self.state: ServingState | None = None
        self.scorer = BatchScorer(
            lambda user_ids, state: _read_rows(self, user_ids, state),
            min_records=settings.min_interactions_personal,
            hide_viewed=settings.hide_viewed,
        )
        self.load_error: str | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.reload)
        self._watch = asyncio.create_task(self._watch_changes())

    async def stop(self) -> None:
        if self.scorer.batches:
            log.info(
                "answered %d requests in %d batches (%.1f per batch), %.0f vectors scored each",
                self.scorer.scored,
                self.scorer.batches,
                self.scorer.scored / self.scorer.batches,
                self.scorer.scanned / max(self.scorer.scored, 1),
            )
        if self._watch is not None:
            self._watch.cancel()
        await self.redis.aclose()
        self.store.client.close()

    def reload(self) -> bool:
        """Build a new state if the model version or the catalog changed; keep the old on error."""
        try:
            state = build_state(self.store, self.settings.topic_events, self.state)
        except ModelVersionError as exc:
            if self.load_error != str(exc):
                log.error("model version refused, serving the previous one: %s", exc)
            self.load_error = str(exc)
            return False
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            if self.load_error != "redis":
                log.warning("redis unavailable while reloading: %s", exc)
            self.load_error = "redis"
            return False
        previous = self.state
        self.state = state
        self.load_error = None
        if (
            previous is None
            or state.catalog is not previous.catalog
            or state.model is not previous.model
        ):
            # The catalog's documents and id maps are hundreds of thousands of long-lived
            # objects: out of the collector's way, a full collection does not stall requests.
            gc.freeze()
        if previous is None or previous.model_version != state.model_version:
            log.info(
                "model version loaded",
                extra={"model_version": state.model_version, "catalog_events": len(state.catalog)},
            )
        return True

    async def _watch_changes(self) -> None:
        """Poll the version and catalog counters; reload within a second of a change."""
        seen: tuple[Any, ...] | None = None
        last_trending = time.monotonic()
        while True:
            await asyncio.sleep(self.settings.serving_reload_seconds)
            try:
                current, switches = await self.redis.mget(
                    self.keys.model_current, self.keys.model_switches
                )
                catalog_version = await asyncio.to_thread(
                    self.store.entity_version, self.settings.topic_events
                )
            except (redis.ConnectionError, redis.TimeoutError):
                continue
            marker = (current, switches, catalog_version)
            stale_trending = time.monotonic() - last_trending > 30
            changed = marker != seen or stale_trending or self.load_error is not None
            if changed and await asyncio.to_thread(self.reload):
                seen = marker
                last_trending = time.monotonic()


async def _runtime(request: Request) -> Runtime:
    # async: FastAPI runs a plain-def dependency on its thread pool, a hop per request.
    runtime: Runtime = request.app.state.runtime
    return runtime


RuntimeDep = Annotated[Runtime, Depends(_runtime)]
UserIdQuery = Annotated[str, Query(min_length=1, max_length=128)]
LimitQuery = Annotated[int, Query(ge=1, le=50)]


def _require_admin(
    runtime: RuntimeDep, authorization: Annotated[str | None, Header()] = None
) -> None:
    """Bearer token of EVENTREC_ADMIN_TOKEN, compared in constant time."""
    token = runtime.settings.admin_token
    if not token:
        raise HTTPException(403, detail="admin disabled: EVENTREC_ADMIN_TOKEN is not set")
    if authorization is None or not authorization.startswith("Bearer "):
        raise HTTPException(
            401,
            detail="admin endpoint: send Authorization: Bearer <token>",
            headers={"WWW-Authenticate": "Bearer"},
        )
    given = authorization.removeprefix("Bearer ").encode()
    if not hmac.compare_digest(given, token.encode()):
        raise HTTPException(403, detail="wrong admin token")


AdminDep = Annotated[None, Depends(_require_admin)]


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


def _state(runtime: Runtime) -> ServingState:
    if runtime.state is None:
        raise Unavailable(f"not loaded yet: {runtime.load_error or 'starting'}")
    return runtime.state


def _epoch(value: datetime | None) -> float | None:
    if value is None:
        return None
    if value.tzinfo is None:
        raise HTTPException(422, detail="starts_after/starts_before need a time zone")
    return value.timestamp()


async def _read_rows(
    runtime: Runtime, user_ids: list[str], state: ServingState
) -> list[np.ndarray | None]:
    """The current rows of a batch's users (serving/rows.py; nothing cached across Redis
    losing data)."""
    assert state.event_space is not None
    topic = runtime.settings.topic_interactions
    try:
        rows = await read_rows(runtime.redis, runtime.keys, topic, user_ids, state.event_space)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unavailable(f"redis unavailable: {exc}") from None
    return rows


async def _profile(runtime: Runtime, user_id: str) -> UserProfileHint | None:
    keys = runtime.keys
    settings = runtime.settings
    try:
        pipe = runtime.redis.pipeline(transaction=False)
        for partition in range(settings.topic_partitions):
            pipe.hget(keys.profiles(settings.topic_users, partition), user_id)
        found = next((doc for doc in await pipe.execute() if doc is not None), None)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unavailable(f"redis unavailable: {exc}") from None
    if found is None:
        return None
    profile = json.loads(found)
    return UserProfileHint(
        city=profile.get("city"), categories=frozenset(profile.get("preferred_categories") or [])
    )


def _trending_items(
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
        boost = np.ones(len(catalog))
        if profile.city:
            boost += catalog.city == catalog.city_code.get(profile.city.casefold(), -1)
        if profile.categories:
            codes = catalog.codes(profile.categories, catalog.category_code)
            boost += np.isin(catalog.category, codes)
        # Profile matches first, then by trend; +1 keeps never-booked events orderable.
        scores = boost * 1e6 + scores
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


def _reasons(
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


def create_app(settings: Settings | None = None) -> FastAPI:
    """The ASGI app; ``settings`` default to the environment (one worker = one entry point)."""
    settings = settings or load_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        # One BLAS thread per worker: concurrent requests must not oversubscribe the cores.
        with threadpool_limits(limits=1):
            runtime = Runtime(settings)
            app.state.runtime = runtime
            await runtime.start()
            yield
            await runtime.stop()

    app = FastAPI(
        title="eventrec",
        version="0.1.0",
        summary="Recommendations of upcoming events for each user of a ticketing platform.",
        lifespan=lifespan,
    )

    @app.exception_handler(Unavailable)
    async def unavailable(request: Request, exc: Unavailable) -> JSONResponse:
        return JSONResponse(
            {"detail": exc.reason}, status_code=503, headers={"Retry-After": RETRY_AFTER_SECONDS}
        )

    @app.get(
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
        state = _state(runtime)
        answer = await runtime.scorer.recommend(state, user_id, filters, limit)
        if answer.positions is not None and answer.scores is not None:
            positions = answer.positions.tolist()
            strategy = "personalised"
            reasons = _reasons(state, positions, answer.strongest or {})
            items = [
                state.catalog.item(p, score, reason)
                for p, score, reason in zip(positions, answer.scores.tolist(), reasons, strict=True)
            ]
        else:
            mask = answer.mask
            if mask is None:
                mask = state.catalog.eligible(filters, time.time())
            profile = await _profile(runtime, user_id)
            strategy, items = _trending_items(state, mask, limit, profile)
        # Plain JSON types already: skip FastAPI's recursive encoder on the hot path.
        return FastJSONResponse(
            {
                "request_id": uuid.uuid4().hex,
                "user_id": user_id,
                "model_version": state.model_version,
                "strategy": strategy,
                "items": items,
            }
        )

    @app.get("/events/{event_id}/similar", summary="Events like this one")
    async def similar(
        runtime: RuntimeDep,
        event_id: Annotated[str, Path(min_length=1, max_length=128)],
        limit: LimitQuery = 10,
    ) -> dict[str, Any]:
        state = _state(runtime)
        position = state.catalog.position.get(event_id)
        if position is None:
            raise HTTPException(404, detail=f"unknown event {event_id!r}")
        mask = state.catalog.eligible(Filters(), time.time())
        mask[position] = False
        if state.catalog_factors is None:
            same = state.catalog.category == state.catalog.category[position]
            strategy, items = _trending_items(state, mask & same, limit, None)
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
            state.catalog.item(p, float(scores[p]), f"similar to {title}")
            for p in positions.tolist()
        ]
        return {
            "event_id": event_id,
            "model_version": state.model_version,
            "strategy": "item_vectors",
            "items": items,
        }

    @app.get("/popular", summary="What is trending among upcoming events")
    async def popular(
        runtime: RuntimeDep,
        limit: LimitQuery = 10,
        city: Annotated[list[str] | None, Query(max_length=20)] = None,
        category: Annotated[list[str] | None, Query(max_length=20)] = None,
    ) -> dict[str, Any]:
        state = _state(runtime)
        filters = Filters(
            cities=frozenset(city) if city else None,
            categories=frozenset(category) if category else None,
        )
        mask = state.catalog.eligible(filters, time.time())
        strategy, items = _trending_items(state, mask, limit, None)
        return {"model_version": state.model_version, "strategy": strategy, "items": items}

    @app.get("/models", summary="Stored model versions with their metrics")
    async def models(runtime: RuntimeDep) -> dict[str, Any]:
        try:
            versions = await asyncio.to_thread(
                list_versions, runtime.store.client, settings.key_prefix
            )
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise Unavailable(f"redis unavailable: {exc}") from None
        serving = runtime.state.model_version if runtime.state else None
        return {"serving": serving, "versions": versions}

    @app.post("/models/{version}/activate", summary="Make a stored version current (rollback)")
    async def activate(
        runtime: RuntimeDep,
        _admin: AdminDep,
        version: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")],
    ) -> dict[str, Any]:
        try:
            await asyncio.to_thread(
                activate_version, runtime.store.client, version, settings.key_prefix
            )
        except ModelVersionError as exc:
            raise HTTPException(404, detail=str(exc)) from None
        log.info("model version activated by admin", extra={"model_version": version})
        return {"activated": version}

    @app.post("/train", status_code=202, summary="Ask the trainer for a fit now")
    async def train(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, Any]:
        queued = await asyncio.to_thread(
            request_training, runtime.store.client, settings.key_prefix, "POST /train"
        )
        return {"queued": queued}

    @app.get("/", summary="Where to start")
    async def index() -> dict[str, str]:
        return {
            "service": "eventrec",
            "docs": "/docs",
            "try": "/recommendations?user_id=<user_id>&limit=10",
            "popular": "/popular?limit=10",
            "ready": "/ready",
        }

    @app.get("/health", summary="The process is alive")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/ready", summary="Redis reachable and the current model version loaded")
    async def ready(runtime: RuntimeDep) -> JSONResponse:
        try:
            await runtime.redis.ping()
            current = await runtime.redis.get(runtime.keys.model_current)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            return JSONResponse({"ready": False, "reason": f"redis unavailable: {exc}"}, 503)
        state = runtime.state
        if state is None:
            return JSONResponse({"ready": False, "reason": runtime.load_error or "loading"}, 503)
        wanted = current.decode() if current else None
        if wanted is not None and state.model_version != wanted:
            reason = runtime.load_error or f"loading model version {wanted}"
            return JSONResponse({"ready": False, "reason": reason}, 503)
        return JSONResponse(
            {
                "ready": True,
                "model_version": state.model_version,
                "catalog_events": len(state.catalog),
            }
        )

    return app
