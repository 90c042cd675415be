"""Reading users' rows for a request: owners, rows and partition event ids, uncached.

A user's owner is read per request (never cached: Redis may lose it), the row with its
partition's stored offset in the same step, so a loss of Redis data is noticed before
a row is read through a stale event table (docs/design.md).

On one Redis server :class:`OwnedRows` reads owners, rows and offsets in one script call
per batch; on a cluster an owner hash and a row are in different slots, so it reads them
in two pipelined round trips (:func:`read_rows`), as it does on a server for a user whose
owner partition it has not met before.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eventrec.model.records import RECORD_DTYPE
from eventrec.serving.events import EventSpace
from eventrec.store.client import is_cluster_client
from eventrec.store.keys import OWNER_SHARDS, Keys
from eventrec.store.scripts import READ_OWNED_ROWS

# A table that cannot cover a row after this many reads of the partition's event list.
MAX_EXTENDS = 3


async def read_rows(
    redis: Any,
    keys: Keys,
    topic: str,
    user_ids: list[str],
    space: EventSpace,
    searches: list[list[str]] | None = None,
) -> list[np.ndarray | None]:
    """Each user's records with event indices in ``space`` (None: no records).

    Three pipelined round trips at most: owners; rows with their partitions' offsets and
    event-list lengths; the event ids a row names that serving has not mapped yet. Given
    ``searches`` (one list per user), each user's recent queries, newest first, are read
    with the rows and put there.
    """
    pipe = redis.pipeline(transaction=False)
    for user_id in user_ids:
        pipe.hget(keys.owner(user_id), user_id)
    owners = [None if raw is None else int(raw) for raw in await pipe.execute()]
    owner_of = {i: owner for i, owner in enumerate(owners) if owner is not None}
    raw_rows = await _read_owned(redis, keys, topic, user_ids, owner_of, space, searches)
    return await _translate(redis, keys, topic, user_ids, owner_of, raw_rows, space)


class OwnedRows:
    """Serving's row reads on one Redis client: one round trip per batch on a server.

    The script is given the key names of the owner partitions met so far (not the owners:
    those are read in the script, every time); a user whose owner is a partition it was
    not given has that row read in a second round trip, and the partition is given from
    then on.
    """

    def __init__(self, redis: Any, keys: Keys, topic: str) -> None:
        self.redis = redis
        self.keys = keys
        self.topic = topic
        self._script = None if is_cluster_client(redis) else redis.register_script(READ_OWNED_ROWS)
        # Replaced, never changed in place: a read uses what it gave its own script call
        # while another read (awaiting) may add a partition.
        self._given: frozenset[int] = frozenset()
        self._given_args: tuple[Any, ...] = ()

    async def read(
        self, user_ids: list[str], space: EventSpace, searches: list[list[str]] | None = None
    ) -> list[np.ndarray | None]:
        """What :func:`read_rows` returns for the same users (and ``searches`` filled the
        same way), in one round trip if it can."""
        if self._script is None:
            return await read_rows(self.redis, self.keys, self.topic, user_ids, space, searches)
        keys, topic = self.keys, self.topic
        given = self._given
        with_searches = searches is not None
        found = await self._script(
            keys=[keys.owner(user_id) for user_id in user_ids],
            args=[len(given), int(with_searches), *self._given_args, *user_ids],
        )
        n = len(user_ids)
        width = 3 if with_searches else 2
        owner_of: dict[int, int] = {}
        raw_rows: dict[int, bytes | None] = {}
        unread: dict[int, int] = {}
        for i in range(n):
            owner = found[width * i]
            if owner is None:
                continue
            owner_of[i] = owner
            if owner in given:
                raw_rows[i] = found[width * i + 1]
                if searches is not None:
                    searches[i] = _queries(found[width * i + 2])
            else:
                unread[i] = owner
        marks = found[width * n :]
        for m in range(0, len(marks), 3):
            partition, offset, length = marks[m : m + 3]
            space.observe(partition, None if offset is None else int(offset), int(length))
        if unread:
            raw_rows.update(
                await _read_owned(self.redis, keys, topic, user_ids, unread, space, searches)
            )
            self._give(set(unread.values()))
        return await _translate(self.redis, keys, topic, user_ids, owner_of, raw_rows, space)

    async def warm(self, space: EventSpace) -> list[int]:
        """Before the first request: map the event ids of every partition that owns users
        (what the first request of each partition would read otherwise, stalling the
        ones behind it), and give the script their keys. Returns those partitions."""
        return await self.refresh(space)

    async def refresh(self, space: EventSpace) -> list[int]:
        """Map what every partition that owns users added to its event list since the
        space last read it (all of it the first time), and give the script their keys:
        which events anyone interacted with, as Redis holds it now. Returns the
        partitions. Two pipelined round trips, the second only for lists that grew."""
        keys, topic = self.keys, self.topic
        pipe = self.redis.pipeline(transaction=False)
        for shard in range(OWNER_SHARDS):
            pipe.smembers(keys.user_partitions(shard))
        partitions = sorted({int(p) for members in await pipe.execute() for p in members})
        if not partitions:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for partition in partitions:
            pipe.get(keys.offset(topic, partition))
            pipe.llen(keys.event_ids(topic, partition))
        found = await pipe.execute()
        grown = []
        for n, partition in enumerate(partitions):
            offset, length = found[2 * n], int(found[2 * n + 1])
            space.observe(partition, None if offset is None else int(offset), length)
            if length > space.known(partition):
                grown.append((partition, space.known(partition)))
        if grown:
            pipe = self.redis.pipeline(transaction=False)
            for partition, start in grown:
                pipe.lrange(keys.event_ids(topic, partition), start, -1)
            for (partition, start), tail in zip(grown, await pipe.execute(), strict=True):
                space.extend(partition, start, [raw.decode() for raw in tail])
        self._give(set(partitions))
        return partitions

    def _give(self, partitions: set[int]) -> None:
        """Give the script these partitions' key names from the next read on."""
        added = sorted(partitions - self._given)
        if not added:
            return
        args = list(self._given_args)
        for partition in added:
            args += [
                partition,
                self.keys.row_prefix(self.topic, partition),
                self.keys.offset(self.topic, partition),
                self.keys.event_ids(self.topic, partition),
                self.keys.searches(self.topic, partition, ""),
            ]
        self._given_args = tuple(args)
        self._given = self._given | frozenset(added)


async def _read_owned(
    redis: Any,
    keys: Keys,
    topic: str,
    user_ids: list[str],
    owner_of: dict[int, int],
    space: EventSpace,
    searches: list[list[str]] | None = None,
) -> dict[int, bytes | None]:
    """The rows of users whose owners are known, by position, in one pipelined round trip,
    with their partitions' stored offsets and event-list lengths (observed in ``space``)
    and, given ``searches``, the users' recent queries (put there)."""
    if not owner_of:
        return {}
    present = list(owner_of)
    partitions = sorted(set(owner_of.values()))
    pipe = redis.pipeline(transaction=False)
    for i in present:
        pipe.get(keys.row(topic, owner_of[i], user_ids[i]))
    if searches is not None:
        for i in present:
            pipe.lrange(keys.searches(topic, owner_of[i], user_ids[i]), 0, -1)
    for partition in partitions:
        pipe.get(keys.offset(topic, partition))
        pipe.llen(keys.event_ids(topic, partition))
    found = await pipe.execute()
    raw_rows = found[: len(present)]
    if searches is not None:
        queries = found[len(present) : 2 * len(present)]
        found = found[: len(present)] + found[2 * len(present) :]
        for i, listed in zip(present, queries, strict=True):
            searches[i] = _queries(listed)
    marks = found[len(present) :]
    for n, partition in enumerate(partitions):
        offset, length = marks[2 * n], marks[2 * n + 1]
        space.observe(partition, None if offset is None else int(offset), int(length))
    return dict(zip(present, raw_rows, strict=True))


def _queries(listed: list[Any] | None) -> list[str]:
    return [q.decode() if isinstance(q, bytes) else str(q) for q in listed or []]


async def _translate(
    redis: Any,
    keys: Keys,
    topic: str,
    user_ids: list[str],
    owner_of: dict[int, int],
    raw_rows: dict[int, bytes | None],
    space: EventSpace,
) -> list[np.ndarray | None]:
    """Rows with space indices, after reading the event ids they name that are not mapped."""
    rows: list[np.ndarray | None] = [None] * len(user_ids)
    local: dict[int, np.ndarray] = {}
    for i, raw in raw_rows.items():
        if raw:
            local[i] = np.frombuffer(raw, dtype=RECORD_DTYPE)
    for _ in range(MAX_EXTENDS):
        short = sorted(
            {
                owner_of[i]
                for i, records in local.items()
                if len(records) and int(records["event"].max()) >= space.known(owner_of[i])
            }
        )
        if not short:
            break
        pipe = redis.pipeline(transaction=False)
        starts = [space.known(partition) for partition in short]
        for partition, start in zip(short, starts, strict=True):
            pipe.lrange(keys.event_ids(topic, partition), start, -1)
        for partition, start, tail in zip(short, starts, await pipe.execute(), strict=True):
            space.extend(partition, start, [raw.decode() for raw in tail])
    for i, records in local.items():
        owner = owner_of[i]
        translated = space.translate(owner, records)
        if translated is None:
            raise LookupError(
                f"user {user_ids[i]!r}: a row names an event index past partition "
                f"{owner}'s event list"
            )
        rows[i] = translated
    return rows
