"""Deterministic assignment of users to experiment variants, by a hash of both names.

The same (experiment, user) always gets the same variant, in every serving process and
after any restart, with no state to store. Two independent 64-bit halves of one hash
decide whether the user is in the experiment's traffic and, if so, which variant.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

_SCALE = float(2**64)


def hash_units(experiment: str, user_id: str) -> tuple[float, float]:
    """Two independent numbers in [0, 1) for this experiment and user."""
    digest = hashlib.blake2b(
        f"{experiment}\x00{user_id}".encode(), digest_size=16, person=b"eventrec-ab"
    ).digest()
    return (
        int.from_bytes(digest[:8], "big") / _SCALE,
        int.from_bytes(digest[8:], "big") / _SCALE,
    )


def assign_variant(
    experiment: str, user_id: str, split: Sequence[float], traffic: float = 1.0
) -> int | None:
    """Index of the user's variant under ``split`` (weights), or None outside ``traffic``."""
    if not split or any(w < 0 for w in split) or sum(split) <= 0:
        raise ValueError("split needs non-negative weights with a positive sum")
    in_traffic, position = hash_units(experiment, user_id)
    if in_traffic >= traffic:
        return None
    total = float(sum(split))
    cumulative = 0.0
    for index, weight in enumerate(split):
        cumulative += weight / total
        if position < cumulative:
            return index
    return len(split) - 1
