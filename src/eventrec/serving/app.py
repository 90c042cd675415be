"""`eventrec serve`: the recommendation API.

Handlers are async and never block on a thread pool: a user's row comes from Redis over
an async connection, the requests that arrive together are scored in one float32 matrix
product (``serving.scoring``; BLAS limited to one thread), and the model and catalog are
reloaded on a background thread and swapped in whole.
"""

from __future__ import annotations

import asyncio
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
import redis
import redis.asyncio as aioredis
from fastapi import Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from threadpoolctl import threadpool_limits

from eventrec.config import Settings, load_settings
from eventrec.logs import configure_logging
from eventrec.model.records import RECORD_DTYPE, TYPE_NAMES
from eventrec.serving.catalog import Filters, top_positions
from eventrec.serving.scoring import BatchScorer
from eventrec.serving.state import VERBS, ServingState, UserProfileHint, build_state
from eventrec.store.keys import Keys
from eventrec.store.store import Store, connect, user_location
from eventrec.store.versions import (
    ModelVersionError,
    activate_version,
    list_versions,
    request_training,
)

log = logging.getLogger("eventrec.serving")

RETRY_AFTER_SECONDS = "2"


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
        self.redis: Any = aioredis.Redis.from_url(
            settings.redis_url, socket_timeout=2, socket_connect_timeout=2
        )
        self.state: ServingState | None = None
        self.user_locations: dict[str, str] = {}
        self.scorer = BatchScorer()
        self.load_error: str | None = None
        self._watch: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await asyncio.to_thread(self.reload)
        self._watch = asyncio.create_task(self._watch_changes())

    async def stop(self) -> None:
        if self.scorer.batches:
            log.info(
                "scored %d requests in %d batches (%.1f per product)",
                self.scorer.scored,
                self.scorer.batches,
                self.scorer.scored / self.scorer.batches,
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
    """The query of ``GET /recommendations``, validated as one model (cheaper than 11)."""

    user_id: str = Field(min_length=1, max_length=128)
    limit: int = Field(10, ge=1, le=50)
    city: list[str] | None = Field(None, max_length=20)
    category: list[str] | None = Field(None, max_length=20)
    min_price: float | None = Field(None, ge=0)
    max_price: float | None = Field(None, ge=0)
    starts_after: datetime | None = None
    starts_before: datetime | None = None
    exclude: list[str] | None = Field(None, max_length=200)


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


USER_CACHE_SIZE = 1_000_000


async def _user_row(runtime: Runtime, user_id: str) -> np.ndarray | None:
    keys = runtime.keys
    try:
        # The id map is append-only: a user's index and row partition never change.
        location = runtime.user_locations.get(user_id)
        if location is None:
            found = await runtime.redis.hget(keys.user_index, user_id)
            if found is None:
                return None
            index, partition = user_location(found)
            location = keys.row(runtime.settings.topic_interactions, partition, index)
            if len(runtime.user_locations) >= USER_CACHE_SIZE:
                runtime.user_locations.clear()
            runtime.user_locations[user_id] = location
        row = await runtime.redis.get(location)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unavailable(f"redis unavailable: {exc}") from None
    if not row:
        return None
    return np.frombuffer(row, dtype=RECORD_DTYPE)


async def _known_event_ids(runtime: Runtime, state: ServingState, records: np.ndarray) -> None:
    """Extend the state's id list when a row names an event indexed since it was built.

    An event's first interaction gives it a new index; without its id, a booking of it
    could not be hidden until the next reload. The id map is append-only: only the tail.
    """
    known = len(state.store_event_ids)
    if not len(records) or int(records["event"].max()) < known:
        return
    try:
        tail = await runtime.redis.lrange(runtime.keys.event_ids, known, -1)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unavailable(f"redis unavailable: {exc}") from None
    if len(state.store_event_ids) == known:
        state.store_event_ids.extend(raw.decode() for raw in tail)


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
    contributions = np.full((len(events), len(positions)), -np.inf, dtype=np.float32)
    if len(events):
        contributions = model.item_factors[events] @ factors[positions].T
        contributions[events[:, None] == own[None, :]] = -np.inf
    reasons = []
    for column, position in enumerate(positions):
        own_event = int(own[column])
        if not len(events) or not np.isfinite(contributions[:, column]).any():
            if own_event in strongest:
                kind, _ = strongest[own_event]
                reasons.append(f"you {VERBS.get(kind, 'liked')} this event")
            else:
                reasons.append("recommended for you")
            continue
        best = int(events[int(np.argmax(contributions[:, column]))])
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

    @app.get("/recommendations", summary="Upcoming events for one user, best first")
    async def recommendations(
        runtime: RuntimeDep, query: Annotated[RecommendationQuery, Query()]
    ) -> JSONResponse:
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
        with runtime.scorer.reading():
            records = await _user_row(runtime, user_id)
        mask = state.catalog.eligible(filters, time.time())
        strategy = "trending"
        items: list[dict[str, Any]] = []
        scores = None
        if records is not None and len(records) >= settings.min_interactions_personal:
            await _known_event_ids(runtime, state, records)
            scored = await runtime.scorer.score(state, records)
            scores, strongest = scored.scores, scored.strongest
            mask[scored.hidden] = False
            if settings.hide_viewed:
                mask[_touched_positions(state, records)] = False
        if scores is not None and state.catalog_factors is not None:
            positions = top_positions(scores, mask, limit).tolist()
            strategy = "personalised"
            reasons = _reasons(state, positions, strongest)
            items = [
                state.catalog.item(p, float(scores[p]), reason)
                for p, reason in zip(positions, reasons, strict=True)
            ]
        else:
            profile = await _profile(runtime, user_id)
            strategy, items = _trending_items(state, mask, limit, profile)
        # Plain JSON types already: skip FastAPI's recursive encoder on the hot path.
        return JSONResponse(
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


def _touched_positions(state: ServingState, records: np.ndarray) -> list[int]:
    found = (state.catalog_position(event) for event in np.unique(records["event"]).tolist())
    return [position for position in found if position is not None]
