"""A synthetic platform with planted tastes, as the trainer sees it (an InteractionLog)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

from eventrec.model.records import InteractionLog
from eventrec.schemas import encode
from eventrec.synth.config import SynthConfig
from eventrec.synth.funnel import BOOKING, BOOKING_CANCELLED, RATING, SEARCH
from eventrec.synth.platform import SyntheticPlatform, generate


@dataclass
class PlatformLog:
    platform: SyntheticPlatform
    log: InteractionLog
    event_ids: list[str]
    user_ids: list[str]
    documents: dict[str, bytes]


def platform_log(platform: SyntheticPlatform) -> PlatformLog:
    """The platform's interactions as the consumer would store them (searches left out)."""
    table = platform.interactions
    keep = table.kind != SEARCH
    kind = table.kind[keep]
    # synth's type codes are the record TYPE_* codes minus one.
    value = np.where(
        kind == RATING, table.rating[keep], np.where(kind == BOOKING, table.quantity[keep], 1)
    )
    booked = np.isin(kind, (BOOKING, BOOKING_CANCELLED))
    aux = np.where(booked, table.booking[keep] % 65_535 + 1, 0)
    log = InteractionLog.from_columns(
        table.user[keep],
        table.event[keep],
        kind + 1,
        value,
        table.time[keep],
        aux,
        n_users=len(platform.user_table),
        n_events=len(platform.event_table),
    )
    documents = {event.event_id: encode(event) for event in platform.events}
    return PlatformLog(
        platform,
        log,
        list(platform.event_table.event_ids),
        list(platform.user_table.user_ids),
        documents,
    )


@pytest.fixture(scope="session")
def synthetic() -> PlatformLog:
    config = SynthConfig(n_users=3000, n_events=500, n_interactions=90_000, seed=3)
    return platform_log(generate(config))
