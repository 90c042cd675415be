"""Synthetic logs with planted taste clusters, shared by the model tests."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from eventrec.model.records import TYPE_BOOKING, TYPE_RATING, TYPE_SAVE, TYPE_VIEW, InteractionLog


def planted_log(
    n_users: int = 600,
    n_clusters: int = 10,
    events_per_cluster: int = 30,
    interactions_per_user: int = 30,
    seed: int = 0,
) -> InteractionLog:
    """Users who each like 2-3 clusters of events; 10% of interactions are popular noise.

    Within a cluster some events are more popular than others; events of popular noise
    follow one global popularity. Times increase with each user's interactions.
    """
    rng = np.random.default_rng(seed)
    n_events = n_clusters * events_per_cluster
    within = 1.0 / np.arange(1, events_per_cluster + 1) ** 0.7
    within /= within.sum()
    global_popularity = rng.permutation(1.0 / np.arange(1, n_events + 1))
    global_popularity /= global_popularity.sum()
    users, events = [], []
    for user in range(n_users):
        liked = rng.choice(n_clusters, size=rng.integers(2, 4), replace=False)
        cluster = rng.choice(liked, size=interactions_per_user)
        event = cluster * events_per_cluster + rng.choice(
            events_per_cluster, size=interactions_per_user, p=within
        )
        noise = rng.random(interactions_per_user) < 0.1
        event[noise] = rng.choice(n_events, size=int(noise.sum()), p=global_popularity)
        users.append(np.full(interactions_per_user, user))
        events.append(event)
    user = np.concatenate(users)
    event = np.concatenate(events)
    kind = rng.choice(
        [TYPE_VIEW, TYPE_SAVE, TYPE_BOOKING, TYPE_RATING], size=len(user), p=[0.5, 0.2, 0.2, 0.1]
    )
    value = np.where(kind == TYPE_RATING, rng.integers(4, 6, size=len(user)), 1)
    aux = np.where(kind == TYPE_BOOKING, rng.integers(1, 60000, size=len(user)), 0)
    time = 1_700_000_000 + np.arange(len(user)) * 60
    return InteractionLog.from_columns(
        user, event, kind, value, time, aux, n_users=n_users, n_events=n_events
    )


@pytest.fixture(scope="session")
def make_planted_log() -> Callable[..., InteractionLog]:
    """:func:`planted_log`, for tests to call with their own sizes."""
    return planted_log
