"""The operations app: a dashboard made only of local assets, metrics, honest errors
(a Redis Cluster failover included)."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from fastapi import FastAPI
from kafka import TopicPartition
from redis.exceptions import ClusterDownError, SlotNotCoveredError
from redis.exceptions import ConnectionError as RedisConnectionError

from eventrec.config import Settings
from eventrec.serving import metrics, ops_server
from eventrec.serving.dashboard import IngestionSampler
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


def test_redis_down_is_a_503_for_the_data_that_lives_there() -> None:
    responses = fetch(
        unreachable_redis(),
        ["/dashboard/api/experiments", "/dashboard/api/models", "/dashboard/api/trending"],
    )
    for response in responses:
        assert response.status_code == 503, response.url
        assert "redis unavailable" in response.json()["detail"]


@pytest.mark.parametrize(
    "error",
    [
        SlotNotCoveredError('Slot "1234" not covered by the cluster.'),
        ClusterDownError("CLUSTERDOWN The cluster is down"),
        RedisConnectionError("Error 111 connecting to 127.0.0.1:17001. Connection refused."),
    ],
    ids=lambda error: type(error).__name__,
)
def test_a_cluster_failover_is_a_503_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    # What redis-py's cluster client raises while a replica takes over a dead master;
    # SlotNotCoveredError is not a RedisError.
    def failing(*args: object) -> dict[str, object]:
        raise error

    for view in ("models_view", "trending_view", "experiments_view"):
        monkeypatch.setattr(ops_server, view, failing)
    responses = fetch(
        unreachable_redis(),
        ["/dashboard/api/experiments", "/dashboard/api/models", "/dashboard/api/trending"],
    )
    for response in responses:
        assert response.status_code == 503, response.url
        assert response.headers["retry-after"] == "2"
        detail = response.json()["detail"]
        assert detail.startswith(f"redis unavailable ({type(error).__name__}: "), detail


def test_the_ingestion_sampler_outlives_a_cluster_failover() -> None:
    class Consumer:
        def partitions_for_topic(self, topic: str) -> set[int]:
            return {0, 1}

        def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
            return {tp: 10 for tp in partitions}

        beginning_offsets = end_offsets

        def assignment(self) -> set[TopicPartition]:
            return set()

        def close(self) -> None:
            pass

    failures = [SlotNotCoveredError("slot not covered"), ClusterDownError("CLUSTERDOWN")]

    class Store:
        def stored_offsets(self, topic: str, numbers: list[int]) -> dict[int, int | None]:
            if failures:
                raise failures.pop(0)
            return {n: 4 for n in numbers}

        def stats(self, topic: str, partition: int) -> dict[str, int]:
            return {"processed": 4}

    sampler = IngestionSampler(Settings(dashboard_sample_seconds=0.05), Store())  # type: ignore[arg-type]
    sampler._connect = Consumer  # type: ignore[method-assign]
    errors: list[str | None] = []
    sampler.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and not sampler.view()["samples"]:
            errors.append(sampler.error)
            time.sleep(0.01)
    finally:
        sampler.stop()
    assert "slot not covered" in errors
    assert "CLUSTERDOWN" in errors
    (first, *_) = sampler.view()["samples"]
    assert first["lag"] == {"0": 6, "1": 6}
    assert first["applied"] == 8
    assert sampler.error is None
