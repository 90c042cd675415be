"""The trainer's cycles over time: each cycle's status, kept for the dashboard.

``trainer-status`` holds the last cycle; ``trainer-history`` the recent ones (newest
first, capped), so a gate that refused a version stays visible after the next cycle.
"""

from __future__ import annotations

import json
from typing import Any

from eventrec.store.store import Store

HISTORY_LENGTH = 200


def record_trainer_status(store: Store, status: dict[str, Any]) -> None:
    """Write one cycle's status as the current one and prepend it to the history."""
    document = json.dumps(status)
    keys = store.keys
    pipe = store.client.pipeline(transaction=True)
    pipe.set(keys.trainer_status, document)
    pipe.lpush(keys.trainer_history, document)
    pipe.ltrim(keys.trainer_history, 0, HISTORY_LENGTH - 1)
    pipe.execute()


def trainer_history(store: Store, limit: int = HISTORY_LENGTH) -> list[dict[str, Any]]:
    """The recent cycles' statuses, oldest first."""
    raw = store.client.lrange(store.keys.trainer_history, 0, limit - 1)
    return [json.loads(item) for item in reversed(raw)]
