"""The local Redis server: reachable, durable (AOF) and never evicting keys."""

from __future__ import annotations

import pytest
import redis

from eventrec.config import Settings

pytestmark = pytest.mark.integration


def test_round_trip_and_server_policy(settings: Settings, redis_client: redis.Redis) -> None:
    key = f"{settings.key_prefix}:round-trip"
    redis_client.set(key, b"\x00\x01binary")
    assert redis_client.get(key) == b"\x00\x01binary"
    assert redis_client.config_get("appendonly") == {"appendonly": "yes"}
    assert redis_client.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
