"""One URL makes every process's client: a server's, or a Redis Cluster's."""

from __future__ import annotations

import asyncio

import pytest
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.exceptions import RedisClusterException

from eventrec.config import ClusterAddress, is_cluster_url, load_settings, parse_cluster_url
from eventrec.errors import ConfigError
from eventrec.store.client import connect, connect_async


def test_a_cluster_url_names_its_seed_nodes() -> None:
    url = "redis+cluster://10.0.0.1:7000,10.0.0.2:7001,[::1]:7002"
    assert is_cluster_url(url)
    assert parse_cluster_url(url) == ClusterAddress(
        nodes=(("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002))
    )


def test_credentials_tls_and_database_zero() -> None:
    address = parse_cluster_url("rediss+cluster://app:s%40cret@node-1:6379/0")
    assert address == ClusterAddress((("node-1", 6379),), True, "app", "s@cret")
    assert parse_cluster_url("redis+cluster://:pw@n:1").password == "pw"
    assert parse_cluster_url("redis+cluster://:pw@n:1").username is None


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("redis+cluster://n:6379/1", "only database 0"),
        ("redis+cluster://n", "host:port"),
        ("redis+cluster://n:6379,", "host:port"),
        ("redis+cluster://n:99999", "host:port"),
        ("redis+cluster://n:6379?ssl=true", "no query options"),
    ],
)
def test_a_bad_cluster_url_is_refused_with_the_reason(url: str, reason: str) -> None:
    with pytest.raises(ConfigError, match="EVENTREC_REDIS_URL") as raised:
        load_settings(redis_url=url)
    assert reason in str(raised.value)


def test_settings_accept_every_scheme() -> None:
    for url in (
        "redis://h:1/0",
        "rediss://h:1/0",
        "unix:///tmp/r.sock",
        "redis+cluster://a:1,b:2",
        "rediss+cluster://a:1",
    ):
        assert load_settings(redis_url=url).redis_url == url
    with pytest.raises(ConfigError, match="redis\\+cluster"):
        load_settings(redis_url="http://h:1")


def test_a_server_url_makes_a_server_client_and_a_cluster_url_a_cluster_client() -> None:
    # Building a cluster client contacts a node: the seed here is a closed port, so the
    # factory's choice shows as RedisCluster's own error, not a plain client.
    server = connect("redis://127.0.0.1:1/0")
    assert isinstance(server, redis.Redis)
    server.close()
    with pytest.raises(RedisClusterException, match="Redis Cluster cannot be connected"):
        connect("redis+cluster://127.0.0.1:1", retries=0, connect_timeout=0.2)

    async def clients() -> None:
        async_server = connect_async("redis://127.0.0.1:1/0")
        assert isinstance(async_server, aioredis.Redis)
        await async_server.aclose()
        async_cluster = connect_async("redis+cluster://127.0.0.1:1,127.0.0.1:2")
        assert isinstance(async_cluster, AsyncRedisCluster)
        assert [(n.host, n.port) for n in async_cluster.nodes_manager.startup_nodes.values()] == [
            ("127.0.0.1", 1),
            ("127.0.0.1", 2),
        ]
        await async_cluster.aclose()

    asyncio.run(clients())
