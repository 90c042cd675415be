"""The Redis layout: id maps, matrix rows, catalog, profiles, model versions."""

from eventrec.store.keys import Keys
from eventrec.store.store import InteractionBatch, StepResult, Store, connect, interaction_hash

__all__ = ["InteractionBatch", "Keys", "StepResult", "Store", "connect", "interaction_hash"]
