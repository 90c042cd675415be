"""Model versions: the list, and the admin's actions on them (activate, train)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import redis
from fastapi import APIRouter, HTTPException, Path

from eventrec.serving.deps import AdminDep, RuntimeDep
from eventrec.serving.errors import Unavailable
from eventrec.store.versions import (
    ModelVersionError,
    activate_version,
    list_versions,
    request_training,
)

log = logging.getLogger("eventrec.serving")

router = APIRouter()


@router.get("/models", summary="Stored model versions with their metrics")
async def models(runtime: RuntimeDep) -> dict[str, Any]:
    try:
        versions = await asyncio.to_thread(
            list_versions, runtime.clients.store.client, runtime.settings.key_prefix
        )
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unavailable(f"redis unavailable: {exc}") from None
    state = runtime.caches.state
    serving = state.model_version if state else None
    return {"serving": serving, "versions": versions}


@router.post("/models/{version}/activate", summary="Make a stored version current (rollback)")
async def activate(
    runtime: RuntimeDep,
    _admin: AdminDep,
    version: Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")],
) -> dict[str, Any]:
    try:
        await asyncio.to_thread(
            activate_version, runtime.clients.store.client, version, runtime.settings.key_prefix
        )
    except ModelVersionError as exc:
        raise HTTPException(404, detail=str(exc)) from None
    log.info("model version activated by admin", extra={"model_version": version})
    return {"activated": version}


@router.post("/train", status_code=202, summary="Ask the trainer for a fit now")
async def train(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, Any]:
    queued = await asyncio.to_thread(
        request_training, runtime.clients.store.client, runtime.settings.key_prefix, "POST /train"
    )
    return {"queued": queued}
