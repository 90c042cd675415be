"""Train/test splits that keep each (user, event) pair whole.

All interactions of a pair go to the same side, so a test event is never one the user
already touched in training (a view in train and the booking in test would leak). A
pair's time is the time of its first interaction. ``test_fraction`` is a fraction of
pairs, not of rows.
"""

from __future__ import annotations

from typing import Final, Literal

import numpy as np

from eventrec.model.records import InteractionLog, pair_keys

__all__ = ["SPLITS", "SplitName", "split_test_mask"]

SplitName = Literal["random", "temporal", "leave-last"]
SPLITS: Final[tuple[SplitName, ...]] = ("random", "temporal", "leave-last")


def _pairs(log: InteractionLog) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Pair of each record, and per pair: its user, first time and first record position."""
    keys = pair_keys(log)
    unique_keys, record_pair = np.unique(keys, return_inverse=True)
    n_pairs = len(unique_keys)
    times = log.records["time"].astype(np.int64)
    # Records sorted by (pair, time, position): the first of each pair is its first interaction.
    order = np.lexsort((np.arange(len(log)), times, record_pair))
    first = order[np.searchsorted(record_pair[order], np.arange(n_pairs))]
    pair_user = (unique_keys // max(log.n_events, 1)).astype(np.int64)
    return record_pair, pair_user, times[first], first


def _n_test(n_pairs: int, test_fraction: float) -> int:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be between 0 and 1, not {test_fraction}")
    return round(test_fraction * n_pairs)


def split_test_mask(
    log: InteractionLog, split: SplitName, test_fraction: float = 0.2, seed: int = 42
) -> np.ndarray:
    """Which records go to the test side, as a bool mask over ``log``'s records.

    Parameters
    ----------
    log : InteractionLog
    split : {"random", "temporal", "leave-last"}
        ``random``: ``round(test_fraction * n_pairs)`` pairs drawn at random.
        ``temporal``: the same number of pairs, the latest by first-interaction time
        globally (ties broken by record order).
        ``leave-last``: each user's latest pair by first-interaction time; a user with a
        single pair keeps it in training, since holding it out leaves nothing to learn
        the user from. ``test_fraction`` is ignored.
    test_fraction : float
        Fraction of pairs in the test side (random and temporal).
    seed : int
        Seed of the random split.

    Returns
    -------
    ndarray of shape (len(log),), bool
    """
    if not len(log):
        return np.zeros(0, dtype=bool)
    record_pair, pair_user, pair_time, pair_first = _pairs(log)
    n_pairs = len(pair_user)
    test_pair = np.zeros(n_pairs, dtype=bool)
    if split == "random":
        rng = np.random.default_rng(seed)
        test_pair[rng.choice(n_pairs, size=_n_test(n_pairs, test_fraction), replace=False)] = True
    elif split == "temporal":
        n_test = _n_test(n_pairs, test_fraction)
        by_time = np.lexsort((pair_first, pair_time))
        test_pair[by_time[n_pairs - n_test :]] = True
    elif split == "leave-last":
        # Sorted by (user, time, position), each user's last pair is the one before the next user.
        by_user = np.lexsort((pair_first, pair_time, pair_user))
        users_sorted = pair_user[by_user]
        last = np.flatnonzero(np.r_[users_sorted[1:] != users_sorted[:-1], True])
        first = np.r_[0, last[:-1] + 1]
        several = last > first
        test_pair[by_user[last[several]]] = True
    else:
        raise ValueError(f"unknown split {split!r}; expected one of {', '.join(SPLITS)}")
    mask: np.ndarray = test_pair[record_pair]
    return mask
