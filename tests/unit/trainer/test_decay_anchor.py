"""The trainer's decays are anchored to the snapshot's instant, never to the data's."""

from __future__ import annotations

import numpy as np

from eventrec.model.records import TYPE_BOOKING, InteractionLog
from eventrec.model.trending import TRENDING_WEIGHTS, trending_scores

DAY = 86_400.0


def bookings(times: list[float]) -> InteractionLog:
    n = len(times)
    return InteractionLog.from_columns(
        np.arange(n),
        np.arange(n),
        np.full(n, TYPE_BOOKING),
        np.ones(n, dtype=np.int64),
        np.array(times),
        n_users=n,
        n_events=n,
    )


def test_trending_decays_from_the_snapshot_time_not_the_latest_record() -> None:
    snapshot_at = 100 * DAY
    log = bookings([snapshot_at - 7 * DAY, snapshot_at - 14 * DAY, 9_000 * DAY])
    scores = trending_scores(log, now=snapshot_at, half_life_days=7.0)
    weight = TRENDING_WEIGHTS[TYPE_BOOKING]
    assert np.allclose(scores[:2], [weight / 2, weight / 4], rtol=1e-6)
    # A record dated after the snapshot does not push the others' age: not zeroed.
    assert scores[2] == np.float32(weight)
