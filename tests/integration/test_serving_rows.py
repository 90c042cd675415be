"""Serving's row reads: the one-round-trip read returns what the two-step read returns."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import numpy as np
import pytest

from eventrec.config import Settings
from eventrec.model.records import RECORD_DTYPE, TYPE_BOOKING, TYPE_RATING, TYPE_VIEW
from eventrec.serving.events import EventSpace
from eventrec.serving.rows import OwnedRows, read_rows
from eventrec.store.client import connect_async
from eventrec.store.keys import Keys
from eventrec.store.scripts import READ_OWNED_ROWS
from eventrec.store.store import NO_HASH, InteractionBatch, Store
from tests.integration.conftest import ON_SERVER_AND_CLUSTER

pytestmark = pytest.mark.integration

NOW = 1_800_000_000

# user -> (owner partition, [(event id, type, value)]); an empty list: owner claimed, no row.
ROWS: dict[str, tuple[int, list[tuple[str, int, int]]]] = {
    "ana": (0, [("ev-1", TYPE_VIEW, 1), ("ev-2", TYPE_BOOKING, 1)]),
    "ben": (0, [("ev-2", TYPE_RATING, 4)]),
    "chloe": (3, [("ev-3", TYPE_VIEW, 1), ("ev-1", TYPE_VIEW, 1), ("ev-9", TYPE_RATING, 5)]),
    "dev": (5, []),
    "femi": (1, [("ev-4", TYPE_BOOKING, 2)]),
}


@pytest.fixture
def store(settings: Settings, redis_client: Any) -> Store:
    """ROWS written as the consumer writes them: owners claimed, then each partition's step."""
    store = Store(redis_client, settings.key_prefix)
    topic = settings.topic_interactions
    for partition in sorted({owner for owner, _ in ROWS.values()}):
        users = [user for user, (owner, _) in ROWS.items() if owner == partition]
        assert store.claim_owners(users, partition) == [partition] * len(users)
        batch = InteractionBatch(topic, partition, 0, 0)
        for user in users:
            for event_id, kind, value in ROWS[user][1]:
                if event_id not in batch.event_ids:
                    batch.event_ids.append(event_id)
                record = np.zeros(1, dtype=RECORD_DTYPE)
                record["event"] = batch.event_ids.index(event_id) + 1
                record["type"], record["value"], record["time"] = kind, value, NOW
                batch.add_record(user, record.tobytes(), NO_HASH)
        batch.next_offset = max(len(batch.slots), 1)
        store.apply_interactions(batch, time.time())
    return store


def readable(rows: list[np.ndarray | None], space: EventSpace) -> list[Any]:
    """Rows as (event id, type, value, time) tuples: comparable across event spaces."""
    return [
        None
        if row is None
        else [
            (space.ids[int(r["event"])], int(r["type"]), int(r["value"]), int(r["time"]))
            for r in row
        ]
        for row in rows
    ]


def expected(users: list[str]) -> list[Any]:
    return [
        [(e, kind, value, NOW) for e, kind, value in ROWS[user][1]]
        if ROWS.get(user, (0, []))[1]
        else None
        for user in users
    ]


class RoundTrips:
    """Counts the round trips a real async client makes: pipelines and script calls."""

    def __init__(self, redis: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.count = 0
        pipeline, evalsha = redis.pipeline, redis.evalsha

        def counted_pipeline(*args: Any, **kwargs: Any) -> Any:
            pipe = pipeline(*args, **kwargs)
            execute = pipe.execute

            async def counted_execute(*a: Any, **k: Any) -> Any:
                self.count += 1
                return await execute(*a, **k)

            pipe.execute = counted_execute
            return pipe

        async def counted_evalsha(*args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await evalsha(*args, **kwargs)

        monkeypatch.setattr(redis, "pipeline", counted_pipeline)
        monkeypatch.setattr(redis, "evalsha", counted_evalsha)


@ON_SERVER_AND_CLUSTER
def test_one_round_trip_reads_what_two_reads_return(
    settings: Settings, store: Store, redis_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, topic = Keys(settings.key_prefix), settings.topic_interactions
    # ana and ben share an owner; dev has an owner but no row; gus was never seen.
    batches = [
        ["ana", "chloe", "dev", "gus", "ben"],
        ["ben", "gus", "ana", "chloe", "dev"],
        ["femi", "ana", "gus"],  # femi's owner is a partition not met before
        ["femi", "chloe"],
    ]

    async def run() -> list[int]:
        redis = connect_async(settings.redis_url)
        await redis.script_load(READ_OWNED_ROWS)  # as after any earlier request
        trips = RoundTrips(redis, monkeypatch)
        reader = OwnedRows(redis, keys, topic)
        one_space, two_space = EventSpace(["ev-9"]), EventSpace(["ev-9"])
        counts = []
        try:
            for users in batches:
                before = trips.count
                one = await reader.read(users, one_space)
                counts.append(trips.count - before)
                two = await read_rows(redis, keys, topic, users, two_space)
                assert readable(one, one_space) == readable(two, two_space) == expected(users)
        finally:
            await redis.aclose()
        return counts

    counts = asyncio.run(run())
    if redis_backend == "server":
        # Batches 2 and 4: one script call. Batch 1: no partition was given yet, so rows
        # come in a second trip and the partitions' event ids in a third; batch 3: femi's
        # partition likewise.
        assert counts == [3, 1, 3, 1]
    else:
        # Owners, then rows (then event ids the first time a partition is met).
        assert counts == [3, 2, 3, 2]


@ON_SERVER_AND_CLUSTER
def test_searches_come_with_the_rows_in_the_same_round_trips(
    settings: Settings, store: Store, redis_client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The hybrid's read: each user's recent searches, newest first, read with the row
    (in the script call on a server), the same as the two-step read finds them."""
    keys, topic = Keys(settings.key_prefix), settings.topic_interactions
    queries = {"ana": ["jazz", "kandy comedy"], "chloe": ["opera"], "femi": ["cricket"]}
    for user, listed in queries.items():
        redis_client.rpush(keys.searches(topic, ROWS[user][0], user), *listed)
    batches = [["ana", "dev", "gus"], ["chloe", "ana", "ben", "gus"], ["femi", "chloe"]]

    async def run() -> list[tuple[list[list[str]], list[list[str]]]]:
        redis = connect_async(settings.redis_url)
        reader = OwnedRows(redis, keys, topic)
        one_space, two_space = EventSpace(["ev-9"]), EventSpace(["ev-9"])
        found = []
        try:
            for users in batches:
                one_searches: list[list[str]] = [[] for _ in users]
                two_searches: list[list[str]] = [[] for _ in users]
                one = await reader.read(users, one_space, one_searches)
                two = await read_rows(redis, keys, topic, users, two_space, two_searches)
                assert readable(one, one_space) == readable(two, two_space) == expected(users)
                found.append((one_searches, two_searches))
        finally:
            await redis.aclose()
        return found

    for users, (one, two) in zip(batches, asyncio.run(run()), strict=True):
        assert one == two == [queries.get(user, []) for user in users]


@ON_SERVER_AND_CLUSTER
def test_one_round_trip_notices_a_partition_that_lost_data(
    settings: Settings, store: Store, redis_backend: str
) -> None:
    """A stored offset that went back (a restore) drops the partition's event table."""
    keys, topic = Keys(settings.key_prefix), settings.topic_interactions

    async def run() -> tuple[int, Any]:
        redis = connect_async(settings.redis_url)
        reader = OwnedRows(redis, keys, topic)
        space = EventSpace([])
        try:
            await reader.read(["chloe"], space)
            await reader.read(["chloe"], space)  # partition 3 given to the script now
            assert space.losses == 0
            store.client.set(keys.offset(topic, 3), 0)
            rows = await reader.read(["chloe"], space)
        finally:
            await redis.aclose()
        return space.losses, readable(rows, space)

    losses, rows = asyncio.run(run())
    assert losses == 1
    assert rows == expected(["chloe"])


@ON_SERVER_AND_CLUSTER
def test_warm_reads_every_owner_partition_before_the_first_request(
    settings: Settings, store: Store, redis_backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    keys, topic = Keys(settings.key_prefix), settings.topic_interactions
    users = [*ROWS, "gus"]

    async def run() -> tuple[list[int], int, Any]:
        redis = connect_async(settings.redis_url)
        reader = OwnedRows(redis, keys, topic)
        space = EventSpace([])
        try:
            partitions = await reader.warm(space)
            await redis.script_load(READ_OWNED_ROWS)  # as after any earlier request
            trips = RoundTrips(redis, monkeypatch)
            rows = await reader.read(users, space)
        finally:
            await redis.aclose()
        return partitions, trips.count, readable(rows, space)

    partitions, trips, rows = asyncio.run(run())
    assert partitions == [0, 1, 3, 5]
    assert rows == expected(users)
    # Every partition met and mapped already: no second trip, no event ids to read.
    assert trips == (1 if redis_backend == "server" else 2)
