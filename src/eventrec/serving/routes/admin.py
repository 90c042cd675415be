"""Model versions: the list, and the admin's actions on them (activate, pin, train).

Every action that makes a version current loads it with serving's own checks first, so
no replica is asked to serve what it would refuse; Redis down is a 503, as everywhere.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, HTTPException, Path

from eventrec.serving.deps import AdminDep, RuntimeDep
from eventrec.serving.errors import Unavailable
from eventrec.serving.runtime import Runtime
from eventrec.store.client import UNAVAILABLE_ERRORS
from eventrec.store.versions import (
    ModelVersionError,
    activate_version,
    list_versions,
    load_version,
    pinned_version,
    read_metadata,
    request_training,
    unpin_version,
)

log = logging.getLogger("eventrec.serving")

router = APIRouter()

VersionPath = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]
T = TypeVar("T")


async def _redis(call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run a blocking store call off the event loop; Redis down becomes a 503."""
    try:
        return await asyncio.to_thread(call, *args, **kwargs)
    except UNAVAILABLE_ERRORS as exc:
        raise Unavailable(f"redis unavailable: {exc}") from None


def _checked(runtime: Runtime, version: str) -> None:
    """404 for a version that does not exist, 409 for one that fails serving's checks."""
    store = runtime.clients.store
    try:
        read_metadata(store, version)
    except ModelVersionError as exc:
        raise HTTPException(404, detail=str(exc)) from None
    try:
        load_version(store, version=version)
    except ModelVersionError as exc:
        raise HTTPException(409, detail=f"refused by serving's checks: {exc}") from None


@router.get("/models", summary="Stored model versions with their metrics")
async def models(runtime: RuntimeDep) -> dict[str, Any]:
    store = runtime.clients.store
    versions = await _redis(list_versions, store)
    pinned = await _redis(pinned_version, store)
    refused = runtime.caches.refused
    for metadata in versions:
        if metadata.get("version") in refused:
            metadata["refused"] = refused[metadata["version"]]
    state = runtime.caches.state
    serving = state.model_version if state else None
    return {"serving": serving, "pinned": pinned, "versions": versions}


@router.post("/models/{version}/activate", summary="Make a stored version current (rollback)")
async def activate(runtime: RuntimeDep, _admin: AdminDep, version: VersionPath) -> dict[str, Any]:
    await _redis(_checked, runtime, version)
    await _redis(activate_version, runtime.clients.store, version)
    pinned = await _redis(pinned_version, runtime.clients.store)
    log.info("model version activated by admin", extra={"model_version": version})
    return {"activated": version, "pinned": pinned}


@router.post(
    "/models/{version}/pin",
    summary="Make a stored version current and keep it: the trainer's versions wait",
)
async def pin(runtime: RuntimeDep, _admin: AdminDep, version: VersionPath) -> dict[str, Any]:
    await _redis(_checked, runtime, version)
    await _redis(activate_version, runtime.clients.store, version, pin=True)
    log.info("model version pinned by admin", extra={"model_version": version})
    return {"activated": version, "pinned": version}


@router.delete("/models/pin", summary="Unpin: the trainer's next version goes live again")
async def unpin(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, Any]:
    was = await _redis(unpin_version, runtime.clients.store)
    log.info("model version unpinned by admin", extra={"model_version": was})
    return {"unpinned": was}


@router.post("/train", status_code=202, summary="Ask the trainer for a fit now")
async def train(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, Any]:
    queued, coalesced = await _redis(
        request_training,
        runtime.clients.store,
        reason="POST /train",
        topic=runtime.settings.topic_interactions,
    )
    return {"queued": queued, "coalesced": coalesced}
