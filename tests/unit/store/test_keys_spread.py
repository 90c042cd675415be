"""Partition hash tags: one slot per partition, spread evenly over a cluster's masters."""

from __future__ import annotations

from collections import Counter

from hypothesis import given
from hypothesis import strategies as st

from eventrec.store.keys import OWNER_SHARDS, Keys, hash_slot, owner_shard, spread_tag

# The slot ranges `redis-cli --cluster create` gives three masters.
THREE_MASTERS = ((0, 5460), (5461, 10922), (10923, 16383))

TOPIC = st.from_regex(r"[A-Za-z0-9._\-]{1,60}", fullmatch=True)


def master_of(slot: int) -> int:
    return next(i for i, (low, high) in enumerate(THREE_MASTERS) if low <= slot <= high)


def test_the_slot_is_the_clusters_crc16() -> None:
    # The specification's CRC16 check value, and CLUSTER KEYSLOT's documented examples
    # ("somekey", and "foo{hash_tag}" whose slot is its tag's).
    assert hash_slot("123456789") == 0x31C3
    assert hash_slot("somekey") == 11058
    assert hash_slot("hash_tag") == 2515


def test_keys_of_one_partition_share_one_slot_and_are_stable() -> None:
    keys = Keys("eventrec")
    tag = spread_tag("interactions", 3)
    for key in (
        keys.offset("interactions", 3),
        keys.stats("interactions", 3),
        keys.row_users("interactions", 3),
        keys.dedup("interactions", 3, 17),
    ):
        assert key.split("{", 1)[1].split("}", 1)[0] == tag
    # Key names are the stored layout: they must never change between releases.
    assert keys.offset("interactions", 0) == "eventrec:{interactions.0.3}:offset"
    assert keys.offset("interactions", 3) == "eventrec:{interactions.3.2}:offset"


@given(TOPIC)
def test_every_three_partitions_land_on_three_masters(topic: str) -> None:
    for n in (3, 6, 12, 24):
        per_master = Counter(master_of(hash_slot(spread_tag(topic, p))) for p in range(n))
        assert sorted(per_master.values()) == [n // 3] * 3, (topic, n, per_master)


def test_tags_differ_per_partition() -> None:
    tags = [spread_tag("interactions", p) for p in range(200)]
    assert len(set(tags)) == 200


def test_the_owner_map_is_six_shards_two_on_each_of_three_masters() -> None:
    keys = Keys("eventrec")
    shards = [keys.owner_shard(k) for k in range(OWNER_SHARDS)]
    assert OWNER_SHARDS == 6
    per_master = Counter(master_of(hash_slot(key.split("{")[1].split("}")[0])) for key in shards)
    assert sorted(per_master.values()) == [2, 2, 2]
    # A user's owner key is its shard's, and users spread over every shard.
    users = [f"u-{n}" for n in range(600)]
    assert all(keys.owner(u) == keys.owner_shard(owner_shard(u)) for u in users)
    assert sorted(Counter(owner_shard(u) for u in users)) == list(range(OWNER_SHARDS))
    assert keys.owner("u-1") == keys.owner("u-1")
