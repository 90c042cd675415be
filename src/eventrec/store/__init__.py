"""The Redis layout: id maps, matrix rows, catalog, profiles, model versions."""

from eventrec.store.keys import Keys
from eventrec.store.store import (
    InteractionBatch,
    Snapshot,
    StepResult,
    Store,
    connect,
    dedup_hash,
    interaction_hash,
)

__all__ = [
    "InteractionBatch",
    "Keys",
    "Snapshot",
    "StepResult",
    "Store",
    "connect",
    "dedup_hash",
    "interaction_hash",
]
