"""Experiment definitions in Redis: creation resolves versions, names are unique, and a
running variant's model version is never pruned."""

from __future__ import annotations

import pytest
import redis

from eventrec.config import Settings
from eventrec.errors import ExperimentError
from eventrec.schemas.impressions import ExperimentSpec, Variant
from eventrec.store.experiments import ExperimentStore
from eventrec.store.keys import Keys
from eventrec.store.versions import prune_versions
from tests.integration.conftest import ON_SERVER_AND_CLUSTER

pytestmark = pytest.mark.integration


@ON_SERVER_AND_CLUSTER
def test_versions_resolved_names_unique_and_pinned_versions_kept(
    settings: Settings, redis_client: redis.Redis
) -> None:
    keys = Keys(settings.key_prefix)
    for sequence in range(1, 6):
        redis_client.zadd(keys.model_versions, {f"v{sequence:06d}": sequence})
    redis_client.set(keys.model_current, "v000005")
    experiments = ExperimentStore(redis_client, settings.key_prefix)
    spec = ExperimentSpec(
        name="pinned",
        variants=[Variant(name="control", model_version="current"),
                  Variant(name="old", model_version="v000001"),
                  Variant(name="plain", strategy="trending")],
        split=[2, 1, 1],
    )  # fmt: skip
    created = experiments.create(spec)
    assert [v.model_version for v in created.variants] == ["v000005", "v000001", "v000005"]
    assert created.code == 1
    assert created.weights == [2, 1, 1]
    with pytest.raises(ExperimentError, match="exists already"):
        experiments.create(spec)
    with pytest.raises(ExperimentError, match="model version v000009 does not exist"):
        experiments.create(
            ExperimentSpec(
                name="missing",
                variants=[Variant(name="a"), Variant(name="b", model_version="v000009")],
            )
        )
    assert [e.name for e in experiments.running()] == ["pinned"]

    assert prune_versions(redis_client, keep=2, prefix=settings.key_prefix) == [
        "v000002",
        "v000003",
    ]
    stopped = experiments.stop("pinned")
    assert stopped.status == "stopped"
    assert experiments.running() == []
    assert prune_versions(redis_client, keep=2, prefix=settings.key_prefix) == ["v000001"]
    with pytest.raises(ExperimentError, match="no experiment named 'nope'"):
        experiments.get("nope")
