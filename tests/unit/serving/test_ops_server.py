"""The operations app: a dashboard made only of local assets, metrics, honest errors."""

from __future__ import annotations

import asyncio
import re

import httpx
from fastapi import FastAPI

from eventrec.config import Settings
from eventrec.serving import metrics
from eventrec.serving.ops_server import create_ops_app

REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"']+)["']""")


def fetch(application: FastAPI, paths: list[str]) -> list[httpx.Response]:
    # No lifespan: no sampler thread; Redis is only reached by the endpoints that need it.
    async def go() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=application)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            return [await client.get(path) for path in paths]

    return asyncio.run(go())


def unreachable_redis() -> FastAPI:
    return create_ops_app(Settings(redis_url="redis://127.0.0.1:1/0"))


def test_the_dashboard_is_made_of_local_assets_only() -> None:
    application = unreachable_redis()
    (page,) = fetch(application, ["/dashboard"])
    assert page.status_code == 200
    references = REFERENCE.findall(page.text)
    assert all(ref.startswith("/") or ref.startswith("data:") for ref in references), references
    assets = [ref for ref in references if ref.startswith("/dashboard/static/")]
    assert len(assets) == 2  # the script and the style sheet
    for response in fetch(application, assets):
        assert response.status_code == 200, response.url
        urls = re.findall(r"https?://[^\s\"'`)]+", response.text)
        assert urls in ([], ["http://www.w3.org/2000/svg"]), urls  # a namespace, not a fetch


def test_metrics_and_the_reload_age() -> None:
    metrics.state_loaded("v000003", 42)
    (response,) = fetch(unreachable_redis(), ["/metrics"])
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'eventrec_serving_model_info{version="v000003"} 1.0' in response.text
    (age,) = re.findall(r"^eventrec_serving_seconds_since_reload (\S+)$", response.text, re.M)
    assert 0 <= float(age) < 60


def test_experiments_say_there_are_none_and_redis_down_is_a_503() -> None:
    experiments, models, trending = fetch(
        unreachable_redis(),
        ["/dashboard/api/experiments", "/dashboard/api/models", "/dashboard/api/trending"],
    )
    assert experiments.json()["experiments"] == []
    assert "No experiments" in experiments.json()["note"]
    for response in (models, trending):
        assert response.status_code == 503
        assert "redis unavailable" in response.json()["detail"]
