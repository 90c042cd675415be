"""The operations port of `eventrec serve`: ``/metrics`` of every worker and ``/dashboard``.

It listens on ``EVENTREC_OPS_HOST:EVENTREC_OPS_PORT`` (loopback by default), apart from
the public API, because lag, dead-letter reasons and validation figures are not for the
public. It runs in the supervising `eventrec serve` process, on a thread of its own, so
one scrape sees the sum of all workers (prometheus-client's multiprocess mode).

The dashboard is one HTML page with a small script and style sheet shipped in the
package (``eventrec/resources/dashboard``): no CDN, no external font. The script draws
its SVG plots from the JSON endpoints under ``/dashboard/api``.
"""

from __future__ import annotations

import asyncio
import math
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from importlib.resources import files
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric

from eventrec.config import Settings
from eventrec.serving.dashboard import (
    CostBoundedView,
    IngestionSampler,
    experiments_view,
    models_view,
    trending_view,
)
from eventrec.store.client import REDIS_ERRORS
from eventrec.store.store import Store, connect
from eventrec.telemetry import metrics_registry

RELOAD_TIMESTAMP = "eventrec_serving_last_reload_timestamp_seconds"


def dashboard_assets() -> Path:
    return Path(str(files("eventrec.resources") / "dashboard"))


class _Forward:
    """Every metric of another registry (the workers' multiprocess values)."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        yield from self.source.collect()


class _ReloadAge:
    """``eventrec_serving_seconds_since_reload``, from the stalest worker's reload time."""

    def __init__(self, source: Any) -> None:
        self.source = source

    def collect(self) -> Iterator[Metric]:
        stamps = [
            sample.value
            for metric in self.source.collect()
            for sample in metric.samples
            if sample.name == RELOAD_TIMESTAMP
        ]
        if stamps:
            age = GaugeMetricFamily(
                "eventrec_serving_seconds_since_reload",
                "Seconds since the stalest serving worker last reloaded model and catalog "
                "(+Inf while one has never loaded).",
            )
            oldest = min(stamps)
            # A worker that never loaded (0) is infinitely stale, not 56 years.
            age.add_metric([], max(0.0, time.time() - oldest) if oldest > 0 else math.inf)
            yield age


def ops_registry() -> CollectorRegistry:
    source = metrics_registry()
    registry = CollectorRegistry()
    registry.register(_Forward(source))
    registry.register(_ReloadAge(source))
    return registry


def create_ops_app(settings: Settings, sampler: IngestionSampler | None = None) -> FastAPI:
    """The operations app; ``sampler`` defaults to one of its own, started with the app."""
    store = Store(connect(settings.redis_url, retries=1), settings.key_prefix)
    own_sampler = sampler is None
    ingestion = sampler or IngestionSampler(settings, store)
    registry = ops_registry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if own_sampler:
            ingestion.start()
        yield
        if own_sampler:
            await asyncio.to_thread(ingestion.stop)
        store.client.close()

    app = FastAPI(
        title="eventrec operations",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
        lifespan=lifespan,
    )

    async def redis_unavailable(request: Request, exc: Exception) -> JSONResponse:
        # A cluster failover (a node down, its slots not covered yet) lasts seconds.
        return JSONResponse(
            {"detail": f"redis unavailable ({type(exc).__name__}: {exc}); retry shortly"},
            status_code=503,
            headers={"Retry-After": "2"},
        )

    for error in REDIS_ERRORS:
        app.add_exception_handler(error, redis_unavailable)

    assets = dashboard_assets()
    app.mount("/dashboard/static", StaticFiles(directory=assets), name="dashboard-static")

    @app.get("/")
    async def index() -> RedirectResponse:
        return RedirectResponse("/dashboard")

    @app.get("/metrics")
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/dashboard")
    async def dashboard() -> FileResponse:
        return FileResponse(assets / "index.html", media_type="text/html")

    @app.get("/dashboard/api/models")
    def models() -> dict[str, Any]:
        return models_view(store)

    @app.get("/dashboard/api/ingestion")
    def ingestion_data() -> dict[str, Any]:
        return ingestion.view()

    @app.get("/dashboard/api/trending")
    def trending() -> dict[str, Any]:
        return trending_view(store, settings.topic_events)

    running_experiments = CostBoundedView(
        lambda: experiments_view(store, settings.topic_impressions)
    )

    @app.get("/dashboard/api/experiments")
    def experiments() -> dict[str, Any]:
        return running_experiments.get()

    return app


class OpsServer:
    """The operations app served by uvicorn on a thread; the socket is bound at once."""

    def __init__(self, settings: Settings, sock: socket.socket) -> None:
        import uvicorn

        self.sock = sock
        self.port: int = sock.getsockname()[1]
        config = uvicorn.Config(
            create_ops_app(settings),
            log_level=settings.log_level.lower(),
            access_log=False,
            lifespan="on",
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name="ops-server", daemon=True
        )

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.ident is not None:
            self._thread.join(timeout=15)
        self.sock.close()
