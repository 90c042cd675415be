"""What a request reads from Redis besides the loaded state: users' rows and profiles."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import numpy as np

from eventrec.model.records import RECORD_DTYPE
from eventrec.serving.errors import Unavailable
from eventrec.serving.state import ServingState, UserProfileHint
from eventrec.store.client import UNAVAILABLE_ERRORS
from eventrec.store.store import user_location

if TYPE_CHECKING:
    from eventrec.serving.runtime import Caches, Clients

USER_CACHE_SIZE = 1_000_000
# The users topic's partitions change only when partitions are added: re-read this often.
PROFILE_PARTITIONS_SECONDS = 5.0


async def read_rows(
    clients: Clients, caches: Caches, user_ids: list[str], state: ServingState
) -> list[np.ndarray | None]:
    """The current rows of a batch's users: at most two pipelined round trips.

    The id map is append-only, so a user's row location never changes and is cached;
    only users seen for the first time need the map. Events indexed since the state was
    built (a row names one) get their ids read, so a booking of one can be hidden at once.
    """
    keys = clients.keys
    cache = caches.user_locations
    locations = [cache.get(user_id) for user_id in user_ids]
    rows: list[np.ndarray | None] = [None] * len(user_ids)
    try:
        missing = [i for i, location in enumerate(locations) if location is None]
        if missing:
            pipe = clients.redis.pipeline(transaction=False)
            for i in missing:
                pipe.hget(keys.user_index, user_ids[i])
            if len(cache) + len(missing) > USER_CACHE_SIZE:
                cache.clear()
            topic = clients.settings.topic_interactions
            for i, found in zip(missing, await pipe.execute(), strict=True):
                if found is not None:
                    index, partition = user_location(found)
                    locations[i] = cache[user_ids[i]] = keys.row(topic, partition, index)
        present = [i for i, location in enumerate(locations) if location is not None]
        if present:
            pipe = clients.redis.pipeline(transaction=False)
            for i in present:
                pipe.get(locations[i])
            for i, raw in zip(present, await pipe.execute(), strict=True):
                if raw:
                    rows[i] = np.frombuffer(raw, dtype=RECORD_DTYPE)
        known = len(state.store_event_ids)
        newest = max((int(r["event"].max()) for r in rows if r is not None and len(r)), default=-1)
        if newest >= known:
            tail = await clients.redis.lrange(keys.event_ids, known, -1)
            if len(state.store_event_ids) == known:
                state.store_event_ids.extend(raw.decode() for raw in tail)
    except UNAVAILABLE_ERRORS as exc:
        raise Unavailable(f"redis unavailable: {exc}") from None
    return rows


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
