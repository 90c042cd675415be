"""Every process's Redis client, made from one URL: one server, or a Redis Cluster.

``redis://`` / ``rediss://`` / ``unix://`` name one server (redis-py's ``Redis``);
``redis+cluster://host:port[,host:port...]`` (``rediss+cluster://`` with TLS) names a
Redis Cluster by some of its nodes (redis-py's ``RedisCluster``, which discovers the rest
and follows failovers). :func:`connect` and :func:`connect_async` are the only places a
client is made, so every process runs on either without knowing which.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode as _AsyncClusterNode
from redis.asyncio.cluster import RedisCluster as AsyncRedisCluster
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.cluster import ClusterNode as _ClusterNode
from redis.cluster import RedisCluster
from redis.exceptions import (
    AskError,
    ClusterDownError,
    RedisClusterException,
    SlotNotCoveredError,
    TryAgainError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from eventrec.config import ClusterAddress, is_cluster_url, parse_cluster_url

log = logging.getLogger(__name__)

T = TypeVar("T")

# How often a cluster read is retried while a failover is in progress (about 12 s).
FAILOVER_RETRIES = 6

# redis-py leaves these constructors unannotated.
ClusterNode: Any = _ClusterNode
AsyncClusterNode: Any = _AsyncClusterNode

# A client of one server or of a cluster; the store uses only what both offer.
RedisClient = redis.Redis | RedisCluster


# What "Redis cannot answer right now" raises, on a server or a cluster (a failover in
# progress: a node down, its slots not covered yet, a slot being moved).
UNAVAILABLE_ERRORS: tuple[type[Exception], ...] = (
    RedisConnectionError,
    RedisTimeoutError,
    ClusterDownError,
    SlotNotCoveredError,
    TryAgainError,
)

# Every error a Redis call may raise. redis-py's cluster client raises some that are not
# ``RedisError`` (``SlotNotCoveredError`` during a failover is a ``RedisClusterException``).
REDIS_ERRORS: tuple[type[Exception], ...] = (redis.RedisError, RedisClusterException)

# A node's read is retried on these: a failover in progress, or a slot that moved.
RETRY_ON_NODE: tuple[type[Exception], ...] = (*UNAVAILABLE_ERRORS, AskError)


def _cluster_options(address: ClusterAddress) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if address.tls:
        options["ssl"] = True
    if address.username is not None:
        options["username"] = address.username
    if address.password is not None:
        options["password"] = address.password
    return options


def connect(
    url: str, *, retries: int = 6, socket_timeout: float = 30, connect_timeout: float = 5
) -> Any:
    """A client of ``url`` that retries lost connections with exponential backoff.

    With the default 6 retries it keeps trying for about 10 s: long enough on a cluster
    for a replica to take over a failed master (the client then refreshes the slot map).
    Typed ``Any``: redis-py types replies as ``bytes | str`` by options; ours are bytes.
    """
    retry = Retry(ExponentialBackoff(cap=4.0, base=0.1), retries)
    if is_cluster_url(url):
        address = parse_cluster_url(url)
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in address.nodes],
            retry=retry,
            socket_connect_timeout=connect_timeout,
            socket_timeout=socket_timeout,
            health_check_interval=30,
            **_cluster_options(address),
        )
    return redis.Redis.from_url(
        url,
        retry=retry,
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
        socket_connect_timeout=connect_timeout,
        socket_timeout=socket_timeout,
        health_check_interval=30,
    )


def connect_async(url: str, *, socket_timeout: float = 2) -> Any:
    """An asyncio client of ``url`` for serving's request path: fail fast, retry once.

    One immediate retry: after a Redis restart each pooled connection fails once (the
    server closed it) and reconnects; a Redis still down fails fast. On a cluster the
    client also re-reads the slot map after a node fails (a replica took over).
    """
    if is_cluster_url(url):
        address = parse_cluster_url(url)
        return AsyncRedisCluster(
            startup_nodes=[AsyncClusterNode(host, port) for host, port in address.nodes],
            retry=AsyncRetry(NoBackoff(), 1),
            socket_connect_timeout=socket_timeout,
            socket_timeout=socket_timeout,
            **_cluster_options(address),
        )
    return aioredis.Redis.from_url(
        url,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=AsyncRetry(NoBackoff(), 1),
        retry_on_error=[RedisConnectionError, RedisTimeoutError],
    )


def is_cluster_client(client: Any) -> bool:
    return isinstance(client, RedisCluster | AsyncRedisCluster)


def node_settings(client: Any, name: str) -> dict[str, str]:
    """A CONFIG setting of the server (key ``""``), or of every master of a cluster."""
    if not is_cluster_client(client):
        return {"": _text(client.config_get(name).get(name))}
    found = client.config_get(name, target_nodes=RedisCluster.PRIMARIES)
    return {node: _text(values.get(name)) for node, values in found.items()}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def per_node(client: Any, tags: Sequence[str], read: Callable[[Any, int], T]) -> list[T]:
    """``read(node_client, i)`` for every item ``i``, grouped by the node serving ``tags[i]``.

    On one server every item is read in turn with ``client``. On a cluster each node's
    items are read in turn with a plain client of that node (so a read may pipeline
    MGETs of its one slot), the nodes in parallel; an item whose node fails is read again
    after the slot map is refreshed (a replica took over). Results keep the items' order.
    """
    if not is_cluster_client(client):
        return [read(client, i) for i in range(len(tags))]
    groups: dict[str, list[int]] = {}
    for i, tag in enumerate(tags):
        groups.setdefault(client.get_node_from_key(tag).name, []).append(i)
    results: dict[int, T] = {}

    def read_group(items: list[int]) -> None:
        for i in items:
            results[i] = _read_on_owner(client, tags[i], read, i)

    with ThreadPoolExecutor(max_workers=len(groups)) as pool:
        for done in [pool.submit(read_group, items) for items in groups.values()]:
            done.result()
    return [results[i] for i in range(len(tags))]


def _read_on_owner(client: Any, tag: str, read: Callable[[Any, int], T], i: int) -> T:
    for attempt in range(FAILOVER_RETRIES + 1):
        node = client.get_node_from_key(tag)
        try:
            return read(client.get_redis_connection(node), i)
        except RETRY_ON_NODE as exc:
            if attempt == FAILOVER_RETRIES:
                raise
            log.warning("cluster node %s unavailable (%s); re-reading the slot map", node.name, exc)
            time.sleep(min(4.0, 0.25 * 2**attempt))
            client.nodes_manager.initialize()
    raise AssertionError("unreachable")
