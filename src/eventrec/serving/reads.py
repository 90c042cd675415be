"""What a request reads from Redis besides the loaded state: users' rows and profiles."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import numpy as np

from eventrec.serving.errors import Unavailable
from eventrec.serving.state import ServingState, UserProfileHint
from eventrec.store.client import UNAVAILABLE_ERRORS

if TYPE_CHECKING:
    from eventrec.serving.runtime import Caches, Clients

# The users topic's partitions change only when partitions are added: re-read this often.
PROFILE_PARTITIONS_SECONDS = 5.0


async def read_rows(
    clients: Clients, caches: Caches, user_ids: list[str], state: ServingState
) -> list[np.ndarray | None]:
    """The current rows of a batch's users, events in the state's space (serving/rows.py).

    Nothing here outlives a loss of Redis data: owners are read per request, and a
    partition's event table is dropped when its stored offset goes back.
    """
    assert state.event_space is not None
    try:
        return await clients.rows.read(user_ids, state.event_space)
    except UNAVAILABLE_ERRORS as exc:
        raise Unavailable(f"redis unavailable: {exc}") from None


async def read_profile(clients: Clients, caches: Caches, user_id: str) -> UserProfileHint | None:
    """The user's city and preferred categories, looked up in the users topic's partitions
    that hold profiles (as the consumer recorded them, not as configured)."""
    keys = clients.keys
    topic = clients.settings.topic_users
    try:
        now = time.monotonic()
        if now - caches.profile_partitions_at > PROFILE_PARTITIONS_SECONDS:
            members = await clients.redis.smembers(keys.entity_partitions(topic))
            caches.profile_partitions = sorted(int(p) for p in members)
            caches.profile_partitions_at = now
        pipe = clients.redis.pipeline(transaction=False)
        for partition in caches.profile_partitions:
            pipe.hget(keys.profiles(topic, partition), user_id)
        found = next((doc for doc in await pipe.execute() if doc is not None), None)
    except UNAVAILABLE_ERRORS as exc:
        raise Unavailable(f"redis unavailable: {exc}") from None
    if found is None:
        return None
    profile = json.loads(found)
    return UserProfileHint(
        city=profile.get("city"), categories=frozenset(profile.get("preferred_categories") or [])
    )
