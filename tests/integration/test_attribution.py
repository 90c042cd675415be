"""The attribution step on a real Redis server and on the local Redis Cluster: whichever
arrives first, once, in the window."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from eventrec.config import Settings
from eventrec.devstack import LocalServices
from eventrec.errors import FencedBatchError
from eventrec.model.impressions import pack_impression, pack_pending, unpack_impressions
from eventrec.store.attribution import AttributionBatch, AttributionStore
from eventrec.store.client import connect
from eventrec.store.store import interaction_hash
from tests.integration.conftest import ON_SERVER_AND_CLUSTER, unique_settings

pytestmark = [pytest.mark.integration, ON_SERVER_AND_CLUSTER]

TOPIC = "impressions"
DAY = 86_400


@pytest.fixture
def attribution(
    services: LocalServices, redis_url: str
) -> Iterator[tuple[AttributionStore, Settings]]:
    settings = unique_settings(services, redis_url=redis_url)
    client = connect(settings.redis_url)
    store = AttributionStore(client, settings.key_prefix, window_seconds=7 * DAY, dedup_seconds=DAY)
    yield store, settings
    keys = list(client.scan_iter(match=f"{settings.key_prefix}:*", count=1000))
    if keys:
        client.delete(*keys)
    client.close()


class Partition:
    """Feeds one partition's batches in offset order."""

    def __init__(self, store: AttributionStore, partition: int = 0) -> None:
        self.store, self.partition, self.offset = store, partition, 0

    def apply(self, *items: tuple[str, str, bytes], now: float | None = None) -> list[int]:
        batch = AttributionBatch(
            TOPIC, self.partition, self.offset, self.offset + len(items), list(items)
        )
        result = self.store.apply(batch, time.time() if now is None else now)
        self.offset += len(items)
        return [result.impressions, result.attributed, result.pending, result.duplicates,
                result.unmatched]  # fmt: skip


def shown(user: str, request: str, at: float, events: list[str], code: int = 7, variant: int = 1):
    return ("i", user, pack_impression(request, at, code, variant, events))


def outcome(user: str, interaction: str, request: str, event: str, at: float, kind: str = "view"):
    entry = pack_pending(request, event, at, kind)
    return ("o", user, interaction_hash(f"{user}\x00{interaction}") + entry)


def test_an_outcome_counts_for_its_variant_and_position_whichever_arrives_first(
    attribution: tuple[AttributionStore, Settings],
) -> None:
    store, _ = attribution
    partition = Partition(store)
    now = time.time()
    events = ["e1", "e2", "e3"]
    # Impression first, then its booking; outcome first, then its impression.
    assert partition.apply(shown("u1", "r1", now, events)) == [1, 0, 0, 0, 0]
    assert partition.apply(outcome("u1", "i1", "r1", "e2", now + 60, "booking")) == [0, 1, 0, 0, 0]
    assert partition.apply(outcome("u2", "i1", "r2", "e3", now + 5)) == [0, 0, 1, 0, 0]
    assert partition.apply(shown("u2", "r2", now, events, variant=0)) == [1, 1, -1, 0, 0]

    users = store.user_counts(TOPIC, 7, 2, ["impressions", "view", "booking"])
    assert users[1] == {"impressions": {"u1": 1}, "view": {}, "booking": {"u1": 1}}
    assert users[0] == {"impressions": {"u2": 1}, "view": {"u2": 1}, "booking": {}}
    days = store.day_counts(TOPIC, 7)
    assert set(days) <= {int(now) // DAY, int(now + 60) // DAY}
    counts: dict[str, int] = {}
    for fields in days.values():
        for name, value in fields.items():
            counts[name] = counts.get(name, 0) + value
    assert counts == {
        "1:impressions": 1,
        "1:booking": 1,
        "1:booking:2": 1,
        "0:impressions": 1,
        "0:view": 1,
        "0:view:3": 1,
    }


def test_once_only_and_only_what_was_shown_within_the_window(
    attribution: tuple[AttributionStore, Settings],
) -> None:
    store, _ = attribution
    partition = Partition(store)
    now = time.time()
    partition.apply(shown("u1", "r1", now, ["e1", "e2"]))
    # The same interaction twice (a producer's re-send), and the impression re-sent.
    assert partition.apply(
        outcome("u1", "i1", "r1", "e1", now + 1),
        outcome("u1", "i1", "r1", "e1", now + 1),
        shown("u1", "r1", now, ["e1", "e2"]),
    ) == [0, 1, 0, 2, 0]
    # An event that response did not show, and a view eight days later.
    assert partition.apply(
        outcome("u1", "i2", "r1", "e9", now + 2),
        outcome("u1", "i3", "r1", "e2", now + 8 * DAY),
    ) == [0, 0, 0, 0, 2]
    # Another user's interaction with the same id counts for that user.
    partition.apply(shown("u2", "r5", now, ["e1"]))
    assert partition.apply(outcome("u2", "i1", "r5", "e1", now + 3)) == [0, 1, 0, 0, 0]
    assert store.user_counts(TOPIC, 7, 2, ["view"])[1]["view"] == {"u1": 1, "u2": 1}


def test_a_stale_batch_is_fenced(attribution: tuple[AttributionStore, Settings]) -> None:
    store, _ = attribution
    now = time.time()
    store.apply(AttributionBatch(TOPIC, 3, 0, 1, [shown("u1", "r1", now, ["e1"])]), now)
    with pytest.raises(FencedBatchError):
        store.apply(AttributionBatch(TOPIC, 3, 0, 1, [shown("u1", "r2", now, ["e1"])]), now)
    assert store.user_counts(TOPIC, 7, 2, ["impressions"])[1]["impressions"] == {"u1": 1}


def test_old_impressions_are_trimmed_and_20_a_user_take_under_64_bytes_each(
    attribution: tuple[AttributionStore, Settings],
) -> None:
    store, _ = attribution
    partition = Partition(store)
    now = time.time()
    events = [f"ev-{i:05d}" for i in range(10)]
    users = [f"u-{i:06d}" for i in range(500)]
    for day in range(3):
        partition.apply(*(shown(u, f"r-{u}-old{day}", now - 9 * DAY, events) for u in users))
    per_user = 20
    for round_ in range(per_user):
        partition.apply(*(shown(u, f"r-{u}-{round_}", now, events) for u in users))
    # The three impressions older than the window were dropped on the next append.
    records = unpack_impressions(store.shown(TOPIC, 0, users[0]))
    assert len(records) == per_user
    assert min(r.shown_at for r in records) == int(now)
    used = store.shown_bytes(TOPIC, 0, users)
    per_impression = used / (len(users) * per_user)
    assert per_impression <= 64, per_impression
