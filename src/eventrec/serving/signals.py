"""What the hybrid reads of a batch of users: rows, profiles and recent searches.

Rows and searches come in the rows' pipelines (a user's searches live under the row's
owner partition); profiles in one pipeline beside them, so a batch waits for no more
round trips than the rows alone.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any

from eventrec.serving.errors import Unavailable
from eventrec.serving.scoring import UsersRead
from eventrec.serving.state import ServingState
from eventrec.store.client import UNAVAILABLE_ERRORS

if TYPE_CHECKING:
    from eventrec.serving.runtime import Caches, Clients

# The users topic's partitions change only when partitions are added: re-read this often.
PROFILE_PARTITIONS_SECONDS = 5.0


async def read_users(
    clients: Clients, caches: Caches, user_ids: list[str], state: ServingState
) -> UsersRead:
    """The batch's rows; with the state's hybrid, also profiles and searches."""
    assert state.event_space is not None
    try:
        if state.hybrid is None:
            return UsersRead(await clients.rows.read(user_ids, state.event_space))
        searches: list[list[str]] = [[] for _ in user_ids]
        found, profiles = await asyncio.gather(
            clients.rows.read(user_ids, state.event_space, searches),
            read_profiles(clients, caches, user_ids),
        )
    except UNAVAILABLE_ERRORS as exc:
        raise Unavailable(f"redis unavailable: {exc}") from None
    return UsersRead(found, profiles, searches)


async def read_profiles(
    clients: Clients, caches: Caches, user_ids: list[str]
) -> list[dict[str, Any] | None]:
    """Each user's profile (None: none), from the users topic's partitions holding some."""
    keys = clients.keys
    topic = clients.settings.topic_users
    now = time.monotonic()
    if now - caches.profile_partitions_at > PROFILE_PARTITIONS_SECONDS:
        members = await clients.redis.smembers(keys.entity_partitions(topic))
        caches.profile_partitions = sorted(int(p) for p in members)
        caches.profile_partitions_at = now
    partitions = caches.profile_partitions
    if not partitions:
        return [None] * len(user_ids)
    pipe = clients.redis.pipeline(transaction=False)
    for user_id in user_ids:
        for partition in partitions:
            pipe.hget(keys.profiles(topic, partition), user_id)
    found = await pipe.execute()
    step = len(partitions)
    profiles: list[dict[str, Any] | None] = []
    for n in range(len(user_ids)):
        document = next((d for d in found[n * step : (n + 1) * step] if d is not None), None)
        parsed = json.loads(document) if document is not None else None
        profiles.append(parsed if isinstance(parsed, dict) else None)
    return profiles
