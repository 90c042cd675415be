"""The attribution step on a real Redis server: whichever arrives first, once, in the window,
in day tables that expire with it and stay listpacks."""

from __future__ import annotations

import time
from typing import Any

import pytest

from eventrec.config import Settings
from eventrec.errors import FencedBatchError
from eventrec.model.impressions import event_hash, pack_impression, pack_pending
from eventrec.store.attribution import DAY, AttributionBatch, AttributionStore, expire_at
from eventrec.store.store import interaction_hash
from tests.integration.conftest import ON_SERVER_AND_CLUSTER

pytestmark = pytest.mark.integration

TOPIC = "impressions"


def attribution(client: Any, settings: Settings, window_days: int = 7) -> AttributionStore:
    return AttributionStore(client, settings.key_prefix, window_seconds=window_days * DAY)


class Partition:
    """Feeds one partition's batches in offset order."""

    def __init__(self, store: AttributionStore, partition: int = 0) -> None:
        self.store, self.partition, self.offset = store, partition, 0

    def apply(self, *items: tuple[str, str, bytes], now: float | None = None) -> list[int]:
        """[impressions, attributed, pending, duplicates, unmatched, expired]"""
        batch = AttributionBatch(
            TOPIC, self.partition, self.offset, self.offset + len(items), list(items)
        )
        result = self.store.apply(batch, time.time() if now is None else now)
        self.offset += len(items)
        return [result.impressions, result.attributed, result.pending, result.duplicates,
                result.unmatched, result.expired]  # fmt: skip


def shown(user: str, request: str, at: float, events: list[str], code: int = 7, variant: int = 1):
    return ("i", user, pack_impression(user, request, at, code, variant, events))


def outcome(user: str, interaction: str, request: str, event: str, at: float, kind: str = "view"):
    entry = pack_pending(user, request, event, at, kind)
    return ("o", user, interaction_hash(f"{user}\x00{interaction}") + entry)


def totals(store: AttributionStore, code: int = 7) -> dict[str, int]:
    counts: dict[str, int] = {}
    for fields in store.day_counts(TOPIC, code).values():
        for name, value in fields.items():
            counts[name] = counts.get(name, 0) + value
    return counts


@ON_SERVER_AND_CLUSTER
def test_an_outcome_counts_for_its_variant_and_position_whichever_arrives_first(
    settings: Settings, redis_client: Any
) -> None:
    store = attribution(redis_client, settings)
    partition = Partition(store)
    now = time.time()
    events = ["e1", "e2", "e3"]
    # Impression first, then its booking; outcome first, then its impression.
    assert partition.apply(shown("u1", "r1", now, events)) == [1, 0, 0, 0, 0, 0]
    assert partition.apply(outcome("u1", "i1", "r1", "e2", now + 60, "booking")) == [
        0, 1, 0, 0, 0, 0]  # fmt: skip
    assert partition.apply(outcome("u2", "i1", "r2", "e3", now + 5)) == [0, 0, 1, 0, 0, 0]
    assert partition.apply(shown("u2", "r2", now, events, variant=0)) == [1, 1, -1, 0, 0, 0]
    # Another user naming u1's response finds nothing of it: responses are per user.
    assert partition.apply(outcome("u3", "i1", "r1", "e2", now + 9)) == [0, 0, 1, 0, 0, 0]

    users = store.user_counts(TOPIC, 7, 2, ["impressions", "view", "booking"])
    assert users[1] == {"impressions": {"u1": 1}, "view": {}, "booking": {"u1": 1}}
    assert users[0] == {"impressions": {"u2": 1}, "view": {"u2": 1}, "booking": {}}
    assert set(store.day_counts(TOPIC, 7)) <= {int(now) // DAY, int(now + 60) // DAY}
    assert totals(store) == {
        "1:impressions": 1,
        "1:booking": 1,
        "1:booking:2": 1,
        "0:impressions": 1,
        "0:view": 1,
        "0:view:3": 1,
    }


def test_once_only_and_only_what_was_shown_within_the_window(
    settings: Settings, redis_client: Any
) -> None:
    store = attribution(redis_client, settings)
    partition = Partition(store)
    now = time.time()
    partition.apply(shown("u1", "r1", now, ["e1", "e2"]))
    # The same interaction twice (a producer's re-send), and the impression re-sent.
    assert partition.apply(
        outcome("u1", "i1", "r1", "e1", now + 1),
        outcome("u1", "i1", "r1", "e1", now + 1),
        shown("u1", "r1", now, ["e1", "e2"]),
    ) == [0, 1, 0, 2, 0, 0]
    # An event that response did not show, and a view eight days later.
    assert partition.apply(
        outcome("u1", "i2", "r1", "e9", now + 2),
        outcome("u1", "i3", "r1", "e2", now + 8 * DAY),
    ) == [0, 0, 0, 0, 2, 0]
    # Another user's interaction with the same id counts for that user.
    partition.apply(shown("u2", "r5", now, ["e1"]))
    assert partition.apply(outcome("u2", "i1", "r5", "e1", now + 3)) == [0, 1, 0, 0, 0, 0]
    assert store.user_counts(TOPIC, 7, 2, ["view"])[1]["view"] == {"u1": 1, "u2": 1}


@ON_SERVER_AND_CLUSTER
def test_a_replayed_batch_is_fenced_and_changes_nothing(
    settings: Settings, redis_client: Any
) -> None:
    store = attribution(redis_client, settings)
    now = time.time()
    batch = AttributionBatch(
        TOPIC, 3, 0, 3,
        [shown("u1", "r1", now, ["e1", "e2"]), outcome("u1", "i1", "r1", "e2", now + 5),
         outcome("u1", "i2", "r9", "e1", now + 6)],
    )  # fmt: skip
    first = store.apply(batch, now)
    assert (first.impressions, first.attributed, first.pending) == (1, 1, 1)
    before = (totals(store), store.user_counts(TOPIC, 7, 2, ["impressions", "view"]),
              sorted(store.table_keys(TOPIC)), store.stats(TOPIC))  # fmt: skip
    # The consumer lost the reply and replays the batch; another replays an older one.
    with pytest.raises(FencedBatchError):
        store.apply(batch, now)
    with pytest.raises(FencedBatchError):
        store.apply(AttributionBatch(TOPIC, 3, 0, 1, [shown("u1", "r2", now, ["e1"])]), now)
    after = (totals(store), store.user_counts(TOPIC, 7, 2, ["impressions", "view"]),
             sorted(store.table_keys(TOPIC)), store.stats(TOPIC))  # fmt: skip
    assert after == before
    assert before[0] == {"1:impressions": 1, "1:view": 1, "1:view:2": 1}
    assert before[3]["batches"] == 1


def test_a_days_tables_expire_a_window_and_an_hour_after_it(
    settings: Settings, redis_client: Any
) -> None:
    store = attribution(redis_client, settings, window_days=2)
    partition = Partition(store)
    now = time.time()
    today = int(now) // DAY
    partition.apply(
        shown("u1", "r1", (today - 1) * DAY + 100, ["e1"]),
        shown("u2", "r2", today * DAY + 5, ["e1"]),
        outcome("u3", "i1", "r3", "e1", today * DAY + 7),  # its impression never comes
    )
    prefix = store.keys.attribution_base(TOPIC, 0)
    for key in store.table_keys(TOPIC):
        day = int(key.decode()[len(prefix) :].split(":")[1])
        assert redis_client.expiretime(key) == expire_at(day, 2 * DAY) == (day + 3) * DAY + 3600
    kinds = sorted(k.decode()[len(prefix) :] for k in store.table_keys(TOPIC))
    assert kinds == [f"pending:{today}", f"pending:{today}:0", f"shown:{today - 1}",
                     f"shown:{today - 1}:0", f"shown:{today}", f"shown:{today}:0"]  # fmt: skip
    # Four days ago is past its day + window + an hour: neither stored nor counted, nor
    # its outcome.
    old = (today - 4) * DAY + 100
    assert partition.apply(
        shown("u4", "r4", old, ["e1"]), outcome("u4", "i4", "r4", "e1", old + 60)
    ) == [0, 0, 0, 0, 0, 2]
    assert len(kinds) == len(list(store.table_keys(TOPIC)))
    assert store.stats(TOPIC)["expired"] == 2
    assert totals(store) == {"1:impressions": 2}


def test_lookups_cross_day_boundaries_within_the_window_and_not_after(
    settings: Settings, redis_client: Any
) -> None:
    store = attribution(redis_client, settings, window_days=2)
    partition = Partition(store)
    today = int(time.time()) // DAY
    early = (today - 2) * DAY + 10  # its window ended ten seconds into today
    partition.apply(shown("u1", "r1", early, ["e1", "e2", "e3"]))
    # An outcome that happened before its impression arrived waits in its own day's table.
    late = (today - 1) * DAY - 10
    assert partition.apply(outcome("u2", "i1", "r2", "e2", late + 30)) == [0, 0, 1, 0, 0, 0]
    assert partition.apply(shown("u2", "r2", late, ["e1", "e2"])) == [1, 1, -1, 0, 0, 0]
    assert partition.apply(
        outcome("u1", "i1", "r1", "e1", early + DAY),  # the next day
        outcome("u1", "i2", "r1", "e2", early + 2 * DAY - 1),  # the window's last second
        outcome("u1", "i3", "r1", "e3", early + 2 * DAY + 1),  # a second after it
    ) == [0, 2, 0, 0, 1, 0]
    assert store.day_counts(TOPIC, 7) == {
        today - 2: {"1:impressions": 2},
        today - 1: {"1:view": 2, "1:view:1": 1, "1:view:2": 1},
        today: {"1:view": 1, "1:view:2": 1},
    }
    record = store.impression(TOPIC, 0, "u1", "r1", today - 2)
    assert record is not None
    assert record.events == tuple(event_hash(e) for e in ["e1", "e2", "e3"])
    assert store.impression(TOPIC, 0, "u1", "r1", today - 1) is None


def test_tables_split_stay_listpacks_and_find_every_response(
    settings: Settings, redis_client: Any
) -> None:
    store = attribution(redis_client, settings)
    partition = Partition(store)
    now = time.time()
    events = [f"ev-{i:05d}" for i in range(10)]
    long = [f"ev-{i:05d}" for i in range(50)]  # a response of 50 events: three chunks
    users = [f"user-{i:06d}" for i in range(12_000)]
    for start in range(0, len(users), 2000):
        partition.apply(*(shown(u, f"r-{u}", now, long if u.endswith("7") else events)
                          for u in users[start : start + 2000]))  # fmt: skip
    prefix = store.keys.attribution_table(TOPIC, 0, "shown", int(now) // DAY)
    buckets = int(redis_client.hget(prefix, "n"))
    assert buckets > 12_000 * 1.1 // 48  # 10 % of the responses take three fields
    for b in range(buckets):
        key = store.keys.attribution_bucket(prefix, b)
        assert redis_client.object("encoding", key) == b"listpack", key
        assert 0 < redis_client.hlen(key) <= 128
    # The last event of each response, viewed: every one found after all the splits.
    for start in range(0, len(users), 2000):
        result = partition.apply(*(
            outcome(u, "i", f"r-{u}", (long if u.endswith("7") else events)[-1], now + 9)
            for u in users[start : start + 2000]))  # fmt: skip
        assert result == [0, 2000, 0, 0, 0, 0]
    assert totals(store, 7)["1:view:50"] == 1200
    assert totals(store, 7)["1:view:10"] == 10_800
    record = store.impression(TOPIC, 0, users[7], f"r-{users[7]}", int(now) // DAY)
    assert record is not None
    assert len(record.events) == 50


def test_a_server_whose_hashes_would_not_stay_listpacks_is_named(
    settings: Settings, redis_client: Any
) -> None:
    store = attribution(redis_client, settings)
    assert store.listpack_warnings() == []
    redis_client.config_set("hash-max-listpack-entries", 64)
    try:
        (warning,) = store.listpack_warnings()
    finally:
        redis_client.config_set("hash-max-listpack-entries", 128)
    assert warning.startswith("Redis hash-max-listpack-entries is 64;")
    assert store.listpack_warnings() == []
