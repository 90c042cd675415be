"""For operators and load balancers: where to start, liveness and readiness."""

from __future__ import annotations

import redis
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from eventrec.serving.deps import RuntimeDep

router = APIRouter()


@router.get("/", summary="Where to start")
async def index() -> dict[str, str]:
    return {
        "service": "eventrec",
        "docs": "/docs",
        "try": "/recommendations?user_id=<user_id>&limit=10",
        "popular": "/popular?limit=10",
        "ready": "/ready",
    }


@router.get("/health", summary="The process is alive")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/ready", summary="Redis reachable and the current model version loaded")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    clients, caches = runtime.clients, runtime.caches
    try:
        await clients.redis.ping()
        current = await clients.redis.get(clients.keys.model_current)
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        return JSONResponse({"ready": False, "reason": f"redis unavailable: {exc}"}, 503)
    state = caches.state
    if state is None:
        return JSONResponse({"ready": False, "reason": caches.load_error or "loading"}, 503)
    wanted = current.decode() if current else None
    if wanted is not None and state.model_version != wanted:
        reason = caches.load_error or f"loading model version {wanted}"
        return JSONResponse({"ready": False, "reason": reason}, 503)
    return JSONResponse(
        {
            "ready": True,
            "model_version": state.model_version,
            "catalog_events": len(state.catalog),
        }
    )
