"""Serving's Prometheus metrics, and the ASGI middleware that counts every request.

Every serving worker writes its values to the multiprocess directory chosen by
``eventrec serve`` (``telemetry.use_multiprocess_dir``); the operations port adds them up.
"""

from __future__ import annotations

import time
from typing import Any

from prometheus_client import Counter, Gauge, Histogram

from eventrec.telemetry import LATENCY_BUCKETS

REQUESTS = Counter(
    "eventrec_http_requests_total",
    "HTTP requests answered by serving, by route template, method and status code.",
    ["endpoint", "method", "status"],
)
REQUEST_SECONDS = Histogram(
    "eventrec_http_request_duration_seconds",
    "Time from a request's arrival to its response's last byte, by route template.",
    ["endpoint"],
    buckets=LATENCY_BUCKETS,
)
BATCH_REQUESTS = Histogram(
    "eventrec_serving_batch_requests",
    "Recommendation requests scored together in one batch.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256),
)
SCORED_VECTORS = Histogram(
    "eventrec_serving_scored_vectors",
    "Catalog vectors scored per personalised recommendation (the pruned top-k's work).",
    buckets=(10, 30, 100, 300, 1_000, 3_000, 10_000, 30_000, 100_000, 300_000),
)
MODEL_INFO = Gauge(
    "eventrec_serving_model_info",
    "1 for the model version serving workers have loaded (label version).",
    ["version"],
    multiprocess_mode="livemax",
)
LAST_RELOAD = Gauge(
    "eventrec_serving_last_reload_timestamp_seconds",
    "Unix time of the last successful reload of model and catalog (the stalest worker's).",
    multiprocess_mode="livemin",
)
CATALOG_EVENTS = Gauge(
    "eventrec_serving_catalog_events",
    "Events in the catalog serving has loaded.",
    multiprocess_mode="livemax",
)

# The route a request did not match is not a label: any path could become one.
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class _Loaded:
    version: str | None = None


def state_loaded(model_version: str | None, catalog_events: int) -> None:
    """A worker swapped in (or re-checked) its state: the version served, and when."""
    version = model_version or "none"
    if _Loaded.version is not None and _Loaded.version != version:
        MODEL_INFO.labels(version=_Loaded.version).set(0)
    _Loaded.version = version
    MODEL_INFO.labels(version=version).set(1)
    CATALOG_EVENTS.set(catalog_events)
    LAST_RELOAD.set(time.time())


class RequestMetrics:
    """Pure ASGI middleware: requests by route template and status, and their latency."""

    def __init__(self, app: Any) -> None:
        self.app = app
        # The labelled children by (endpoint, method, status): .labels() costs more than
        # the increment itself, on every request. Bounded: routes x methods x statuses.
        self._children: dict[tuple[str, str, str], tuple[Any, Any]] = {}

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_status(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", None) or UNMATCHED
            method = scope["method"] if scope["method"] in METHODS else "other"
            key = (endpoint, method, str(status))
            children = self._children.get(key)
            if children is None:
                children = (REQUESTS.labels(*key), REQUEST_SECONDS.labels(endpoint))
                self._children[key] = children
            children[0].inc()
            children[1].observe(time.perf_counter() - started)
