"""A/B experiments (admin): create, list, show, stop, report; and impression counts."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated, Any

import redis
from fastapi import APIRouter, HTTPException, Path

from eventrec.errors import ExperimentError
from eventrec.experiments.report import build_report, outside_experiments
from eventrec.schemas.impressions import ExperimentSpec
from eventrec.serving.deps import AdminDep, RuntimeDep
from eventrec.serving.errors import Unavailable
from eventrec.serving.runtime import Runtime
from eventrec.store.attribution import AttributionStore
from eventrec.store.experiments import ExperimentStore

log = logging.getLogger("eventrec.serving")

router = APIRouter(tags=["experiments"])

NameParam = Annotated[str, Path(pattern=r"^[A-Za-z0-9_.\-]{1,64}$")]


def _experiments(runtime: Runtime) -> ExperimentStore:
    store = runtime.clients.store
    return ExperimentStore(store.client, store.keys.prefix)


async def _call(function: Any, *args: Any) -> Any:
    """Run a Redis-bound call off the event loop: 404/409 for what the admin asked wrong,
    503 when Redis is away."""
    try:
        return await asyncio.to_thread(function, *args)
    except ExperimentError as exc:
        status = (
            409 if "exists already" in str(exc) else 404 if "no experiment" in str(exc) else 422
        )
        raise HTTPException(status, detail=str(exc)) from None
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        raise Unavailable(f"redis unavailable: {exc}") from None


@router.post("/experiments", status_code=201, summary="Start an experiment")
async def create(runtime: RuntimeDep, _admin: AdminDep, spec: ExperimentSpec) -> dict[str, Any]:
    experiment = await _call(_experiments(runtime).create, spec)
    log.info("experiment created", extra={"experiment": experiment.name, "code": experiment.code})
    result: dict[str, Any] = experiment.model_dump(mode="json")
    return result


@router.get("/experiments", summary="Every experiment, running or stopped")
async def list_experiments(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, Any]:
    experiments = await _call(_experiments(runtime).all)
    return {"experiments": [e.model_dump(mode="json") for e in experiments]}


@router.get("/experiments/{name}", summary="One experiment's definition")
async def show(runtime: RuntimeDep, _admin: AdminDep, name: NameParam) -> dict[str, Any]:
    experiment = await _call(_experiments(runtime).get, name)
    result: dict[str, Any] = experiment.model_dump(mode="json")
    return result


@router.post("/experiments/{name}/stop", summary="Stop assigning users (the counts stay)")
async def stop(runtime: RuntimeDep, _admin: AdminDep, name: NameParam) -> dict[str, Any]:
    experiment = await _call(_experiments(runtime).stop, name)
    log.info("experiment stopped", extra={"experiment": name})
    result: dict[str, Any] = experiment.model_dump(mode="json")
    return result


@router.get("/experiments/{name}/report", summary="Per-variant rates, intervals, verdict")
async def report(runtime: RuntimeDep, _admin: AdminDep, name: NameParam) -> dict[str, Any]:
    experiment = await _call(_experiments(runtime).get, name)
    store = runtime.clients.store
    attribution = AttributionStore(store.client, store.keys.prefix)
    result: dict[str, Any] = await _call(
        build_report, attribution, runtime.settings.topic_impressions, experiment
    )
    return result


@router.get("/attribution", summary="Traffic outside experiments: impressions and outcomes")
async def attribution(runtime: RuntimeDep, _admin: AdminDep) -> dict[str, Any]:
    """Per day: impressions, views, saves and bookings attributed to the responses of
    users outside every experiment, in total and by position (``view:1`` …)."""
    store = runtime.clients.store
    counts = AttributionStore(store.client, store.keys.prefix)
    result: dict[str, Any] = await _call(
        outside_experiments, counts, runtime.settings.topic_impressions
    )
    return result


@router.get("/impressions/stats", summary="This worker's impressions: sent, dropped, failed")
async def impression_stats(runtime: RuntimeDep) -> dict[str, int]:
    return runtime.impressions.stats()
