"""`eventrec serve`: the recommendation API, assembled from one router per concern.

Handlers are async and never block on a thread pool: a user's row comes from Redis over
an async connection, the requests that arrive together are scored in one float32 matrix
product (``serving.scoring``; BLAS limited to one thread), and the model and catalog are
reloaded on a background thread and swapped in whole (``serving.runtime``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from threadpoolctl import threadpool_limits

from eventrec.config import Settings, load_settings
from eventrec.logs import configure_logging
from eventrec.serving.deps import unavailable_handler
from eventrec.serving.docs import add_offline_docs
from eventrec.serving.errors import Unavailable
from eventrec.serving.metrics import RequestMetrics
from eventrec.serving.routes import admin, catalog, experiments, ops, recommendations
from eventrec.serving.runtime import Runtime


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
        docs_url=None,
        redoc_url=None,
    )
    add_offline_docs(app)
    app.add_middleware(RequestMetrics)
    app.add_exception_handler(Unavailable, unavailable_handler)
    for module in (recommendations, catalog, admin, experiments, ops):
        app.include_router(module.router)
    return app
