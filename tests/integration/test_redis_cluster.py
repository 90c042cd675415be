"""The local Redis Cluster and every client made on it (`services up --redis-cluster` is
tested beside `services up` in test_local_services.py)."""

from __future__ import annotations

import signal
import time
from collections import Counter

import pytest
import redis
from redis.cluster import RedisCluster

from eventrec.devstack import LocalRedisCluster
from eventrec.errors import ConfigError
from eventrec.store import Store
from eventrec.store.client import connect
from eventrec.store.keys import OWNER_SHARDS, owner_shard

pytestmark = pytest.mark.integration


def test_every_node_is_durable_and_never_evicts(redis_cluster: LocalRedisCluster) -> None:
    for port in redis_cluster.ports:
        node = redis.Redis(port=port)
        try:
            assert node.config_get("appendonly") == {"appendonly": "yes"}
            assert node.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
            assert node.config_get("cluster-enabled") == {"cluster-enabled": "yes"}
        finally:
            node.close()


def test_the_client_factory_makes_a_cluster_client_that_spans_every_master(
    redis_cluster: LocalRedisCluster,
) -> None:
    client = connect(redis_cluster.url)
    try:
        assert isinstance(client, RedisCluster)
        keys = [f"test-factory:{{k{i}}}" for i in range(60)]
        pipe = client.pipeline(transaction=False)
        for i, key in enumerate(keys):
            pipe.set(key, i)
        pipe.execute()
        # Sixty hash tags land on all three masters, and every key reads back.
        assert len({client.get_node_from_key(key).port for key in keys}) == 3
        assert [int(v) for v in (client.get(key) for key in keys)] == list(range(60))
    finally:
        client.delete(*keys)
        client.close()


def test_a_master_that_may_evict_is_refused_by_name(redis_cluster: LocalRedisCluster) -> None:
    master = redis_cluster.masters()[-1]
    node = redis.Redis(port=master.port)
    store = Store(connect(redis_cluster.url), "test-eviction")
    try:
        store.check_eviction_policy()
        node.config_set("maxmemory-policy", "allkeys-lru")
        with pytest.raises(ConfigError, match=f"'allkeys-lru' on node 127.0.0.1:{master.port}"):
            store.check_eviction_policy()
    finally:
        node.config_set("maxmemory-policy", "noeviction")
        node.close()
        store.client.close()


def wait_calls(port: int) -> int:
    node = redis.Redis(port=port)
    try:
        return int(node.info("commandstats").get("cmdstat_wait", {}).get("calls", 0))
    finally:
        node.close()


def test_owner_claims_reach_a_replica_before_the_consumer_goes_on(
    redis_cluster: LocalRedisCluster,
) -> None:
    """A claim the master acknowledged but its replica never got would be lost in a
    failover while the user's row survives on another master (two rows for one user):
    new claims wait (WAIT) for a replica. A replica down costs the wait, not the batch."""
    prefix = "test-claims"
    client = connect(redis_cluster.url)
    store = Store(client, prefix, claim_replicas=1, claim_wait_ms=300)
    nodes = redis_cluster.nodes()
    replica_of = {n.master_id: n.port for n in nodes if n.role == "replica"}
    master_of_port = {n.port: n.node_id for n in nodes if n.role == "master"}
    users = [f"user-{i}" for i in range(60)]
    shard_master = {
        shard: client.get_node_from_key(store.keys.owner_shard(shard)).port
        for shard in range(OWNER_SHARDS)
    }
    killed = None
    try:
        before = {port: wait_calls(port) for port in master_of_port}
        assert store.claim_owners(users, 2) == [2] * 60
        # One WAIT per owner shard that claimed (six shards, two per master)...
        after = {port: wait_calls(port) for port in master_of_port}
        claimed_on = Counter(shard_master[owner_shard(u)] for u in dict.fromkeys(users))
        assert {p: after[p] - before[p] for p in after} == {p: 2 for p in master_of_port}
        assert len(claimed_on) == 3
        assert store.claims_not_replicated == 0
        # ...so every claim is on the shard's replica when claim_owners returns.
        for shard in range(OWNER_SHARDS):
            replica = redis.Redis(port=replica_of[master_of_port[shard_master[shard]]])
            try:
                replica.execute_command("READONLY")
                on_replica = replica.hgetall(store.keys.owner_shard(shard))
            finally:
                replica.close()
            mine = {u for u in users if owner_shard(u) == shard}
            assert {k.decode() for k in on_replica} >= mine
        # Claims that exist already: first claim wins, nothing to wait for.
        assert store.claim_owners(users, 4) == [2] * 60
        assert {port: wait_calls(port) for port in master_of_port} == after

        # A replica down: its master's new claims wait 300 ms, then the batch goes on.
        victim_master = shard_master[0]
        killed = replica_of[master_of_port[victim_master]]
        redis_cluster.stop_node(killed, signal.SIGKILL)
        newcomers = [f"newcomer-{i}" for i in range(60)]
        started = time.monotonic()
        assert store.claim_owners(newcomers, 5) == [5] * 60
        assert time.monotonic() - started >= 0.3
        shards_on_victim = sum(1 for s in range(OWNER_SHARDS) if shard_master[s] == victim_master)
        assert store.claims_not_replicated == shards_on_victim
    finally:
        if killed is not None:
            redis_cluster.start_node(killed)
            redis_cluster.wait_ready()
        keys = list(client.scan_iter(match=f"{prefix}:*", count=1000))
        if keys:
            client.delete(*keys)
        store.close_claim_connections()
        client.close()
