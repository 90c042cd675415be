"""`services status` on a cluster: masters with their slots, replicas with their master."""

from __future__ import annotations

from eventrec.config import Settings
from eventrec.devstack.cluster import LocalRedisCluster, parse_cluster_nodes


def node(node_id: str, flags: str, master: str, slots: list[list[str]]) -> dict[str, object]:
    return {"node_id": node_id, "flags": flags, "master_id": master, "slots": slots}


def test_masters_slots_and_replicas() -> None:
    reply = {
        "127.0.0.1:7000@17000": node("a", "myself,master", "-", [["0", "5460"]]),
        "127.0.0.1:7001@17001": node("b", "master", "-", [["5461", "10922"], ["16383"]]),
        "127.0.0.1:7003@17003": node("c", "slave", "a", []),
        "127.0.0.1:7004@17004": node("d", "slave,fail", "b", []),
    }
    nodes = {n.port: n for n in parse_cluster_nodes(reply)}  # type: ignore[arg-type]
    assert nodes[7000].slot_count == 5461
    assert nodes[7001].slots == ((5461, 10922), (16383, 16383))
    assert nodes[7001].slot_count == 5463
    masters = {n.node_id: n.port for n in nodes.values() if n.role == "master"}
    assert nodes[7000].describe(masters) == "master, 5461 slots (0-5460)"
    assert nodes[7001].describe(masters) == "master, 5463 slots (5461-10922,16383)"
    assert nodes[7003].describe(masters) == "replica of 127.0.0.1:7000"
    assert nodes[7004].failed
    assert not nodes[7003].failed


def test_six_ports_from_the_setting_and_a_url_naming_them_all() -> None:
    cluster = LocalRedisCluster(Settings(local_redis_cluster_port=37000))
    assert cluster.ports == list(range(37000, 37006))
    assert cluster.url == "redis+cluster://" + ",".join(
        f"127.0.0.1:{p}" for p in range(37000, 37006)
    )
