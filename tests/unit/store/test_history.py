"""The trainer's cycle history: last status, and the recent ones oldest first, capped."""

from __future__ import annotations

import json

import fakeredis

from eventrec.store.history import HISTORY_LENGTH, record_trainer_status, trainer_history
from eventrec.store.store import Store


def test_cycles_are_kept_in_order_and_capped() -> None:
    store = Store(fakeredis.FakeRedis(), "t")
    for n in range(HISTORY_LENGTH + 5):
        record_trainer_status(store, {"outcome": "gated" if n % 2 else "published", "n": n})
    history = trainer_history(store)
    assert [status["n"] for status in history] == list(range(5, HISTORY_LENGTH + 5))
    assert json.loads(store.client.get(store.keys.trainer_status))["n"] == HISTORY_LENGTH + 4
    assert [status["n"] for status in trainer_history(store, limit=3)] == [
        HISTORY_LENGTH + 2,
        HISTORY_LENGTH + 3,
        HISTORY_LENGTH + 4,
    ]
