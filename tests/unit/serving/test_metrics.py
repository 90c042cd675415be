"""Serving's request metrics: route templates as labels, never a client's path or method."""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI
from prometheus_client import REGISTRY

from eventrec.serving.metrics import MODEL_INFO, RequestMetrics, state_loaded


def count(endpoint: str, method: str, status: str) -> float:
    value = REGISTRY.get_sample_value(
        "eventrec_http_requests_total", {"endpoint": endpoint, "method": method, "status": status}
    )
    return value or 0.0


def app() -> FastAPI:
    application = FastAPI()
    application.add_middleware(RequestMetrics)

    @application.get("/things/{thing_id}")
    async def thing(thing_id: str) -> dict[str, str]:
        return {"thing_id": thing_id}

    return application


def call(application: FastAPI, method: str, path: str) -> int:
    """The status of one request to ``application``, in process (no server)."""

    async def go() -> int:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return (await client.request(method, path)).status_code

    return asyncio.run(go())


def test_requests_are_counted_by_route_template_and_status() -> None:
    application = app()
    before = count("/things/{thing_id}", "GET", "200")
    latency_before = REGISTRY.get_sample_value(
        "eventrec_http_request_duration_seconds_count", {"endpoint": "/things/{thing_id}"}
    )
    for thing_id in ("a", "b", "c"):
        assert call(application, "GET", f"/things/{thing_id}") == 200
    assert count("/things/{thing_id}", "GET", "200") == before + 3
    latency_after = REGISTRY.get_sample_value(
        "eventrec_http_request_duration_seconds_count", {"endpoint": "/things/{thing_id}"}
    )
    assert latency_after == (latency_before or 0) + 3


def test_unknown_paths_and_methods_do_not_become_labels() -> None:
    application = app()
    unmatched = count("unmatched", "GET", "404")
    other = count("/things/{thing_id}", "other", "405")
    assert call(application, "GET", "/made/up/path-1") == 404
    assert call(application, "GET", "/made/up/path-2") == 404
    assert call(application, "BREW", "/things/x") == 405
    assert count("unmatched", "GET", "404") == unmatched + 2
    assert count("/things/{thing_id}", "other", "405") == other + 1
    labels = {
        sample.labels.get("endpoint")
        for metric in REGISTRY.collect()
        for sample in metric.samples
        if sample.name == "eventrec_http_requests_total"
    }
    assert not any("made" in str(label) for label in labels)


def test_the_served_model_version_is_the_only_one_at_1() -> None:
    state_loaded("v000001", 10)
    state_loaded("v000002", 12)
    assert MODEL_INFO.labels(version="v000002")._value.get() == 1
    assert MODEL_INFO.labels(version="v000001")._value.get() == 0
