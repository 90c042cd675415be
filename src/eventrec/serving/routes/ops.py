"""For operators and load balancers: where to start, liveness and readiness."""

from __future__ import annotations

import time
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from eventrec.serving.deps import RuntimeDep
from eventrec.store.client import UNAVAILABLE_ERRORS

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


def _not_ready(reason: str, **extra: Any) -> JSONResponse:
    return JSONResponse({"ready": False, "reason": reason, **extra}, 503)


@router.get("/ready", summary="Redis reachable and a checked model version loaded")
async def ready(runtime: RuntimeDep) -> JSONResponse:
    """Ready while Redis answers, the reload watcher keeps up, and a checked version serves:
    the current one, or the previous one while the current loads or after it was refused."""
    clients, caches = runtime.clients, runtime.caches
    reload_age = round(time.monotonic() - caches.checked_at, 3)
    try:
        await clients.redis.ping()
        current = await clients.redis.get(clients.keys.model_current)
    except UNAVAILABLE_ERRORS as exc:
        return _not_ready(f"redis unavailable: {exc}", reload_age_seconds=reload_age)
    limit = runtime.settings.serving_reload_max_age_seconds
    if reload_age > limit:
        return _not_ready(
            f"no successful reload check for {reload_age:.0f} s (limit "
            f"EVENTREC_SERVING_RELOAD_MAX_AGE_SECONDS={limit:g}): "
            f"{caches.watch_error or caches.load_error or 'unknown'}",
            reload_age_seconds=reload_age,
        )
    state = caches.state
    if state is None:
        return _not_ready(caches.load_error or "loading", reload_age_seconds=reload_age)
    wanted = current.decode() if current else None
    refused = {wanted: caches.refused[wanted]} if wanted in caches.refused else {}
    loading = None
    if wanted is not None and state.model_version != wanted:
        if state.model_version is None:
            reason = (
                f"current version refused and no checked version to serve: {refused[wanted]}"
                if refused
                else caches.load_error or f"loading model version {wanted}"
            )
            return _not_ready(reason, refused=refused, reload_age_seconds=reload_age)
        # A checked version serves while the new one loads: every replica reloads at the
        # same moment after a publish, and none should leave the balancer for it. A load
        # that keeps failing shows in reload_age_seconds and fails the age check above.
        loading = None if refused else wanted
    return JSONResponse(
        {
            "ready": True,
            "model_version": state.model_version,
            "catalog_events": len(state.catalog),
            "reload_age_seconds": reload_age,
            "refused": refused,
            "loading": loading,
        }
    )
