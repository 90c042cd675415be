"""Reading users' rows for a request: owners, rows and partition event ids, uncached.

A user's owner is read per request (never cached: Redis may lose it), the row with its
partition's stored offset in the same pipeline, so a loss of Redis data is noticed before
a row is read through a stale event table (docs/design.md).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from eventrec.model.records import RECORD_DTYPE
from eventrec.serving.events import EventSpace
from eventrec.store.keys import Keys

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
    present = list(owner_of)
    rows: list[np.ndarray | None] = [None] * len(user_ids)
    if not present:
        return rows
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
            searches[i] = [q.decode() if isinstance(q, bytes) else str(q) for q in listed or []]
    marks = found[len(present) :]
    for n, partition in enumerate(partitions):
        offset, length = marks[2 * n], marks[2 * n + 1]
        space.observe(partition, None if offset is None else int(offset), int(length))
    local: dict[int, np.ndarray] = {}
    for i, raw in zip(present, raw_rows, strict=True):
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
