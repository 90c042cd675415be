"""The binary interaction record: how one interaction is stored in a user's matrix row.

A user's row in Redis is the concatenation of fixed-size little-endian records, in the
order the consumer applied them (Kafka offset order within the user's partition), so
``np.frombuffer(row, RECORD_DTYPE)`` reads it back without copying.

=======  =======  ============================================================
field    type     meaning
=======  =======  ============================================================
event    uint32   dense event index (the id map of the store)
time     uint32   ``occurred_at`` in whole seconds since the Unix epoch
type     uint8    one of the ``TYPE_*`` codes below
value    uint8    rating 1..5; booking quantity (capped at 255); number of views a
                  compacted view record stands for (capped at 255); otherwise 1
aux      uint16   16-bit hash of ``booking_id`` for booking types (never 0); else 0
=======  =======  ============================================================
"""

from __future__ import annotations

import hashlib
from typing import Final

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

RECORD_DTYPE: Final = np.dtype(
    [("event", "<u4"), ("time", "<u4"), ("type", "u1"), ("value", "u1"), ("aux", "<u2")]
)
RECORD_SIZE: Final = RECORD_DTYPE.itemsize  # 12 bytes

TYPE_VIEW: Final = 1
TYPE_SAVE: Final = 2
TYPE_BOOKING: Final = 3
TYPE_BOOKING_CANCELLED: Final = 4
TYPE_RATING: Final = 5
TYPE_DISMISS: Final = 6

TYPE_CODES: Final = {
    "view": TYPE_VIEW,
    "save": TYPE_SAVE,
    "booking": TYPE_BOOKING,
    "booking_cancelled": TYPE_BOOKING_CANCELLED,
    "rating": TYPE_RATING,
    "dismiss": TYPE_DISMISS,
}
TYPE_NAMES: Final = {code: name for name, code in TYPE_CODES.items()}

MAX_VALUE: Final = 255


def booking_hash(booking_id: str | None) -> int:
    """A non-zero 16-bit hash of ``booking_id`` (0 means "no booking id")."""
    if booking_id is None:
        return 0
    digest = hashlib.blake2b(booking_id.encode("utf-8"), digest_size=2).digest()
    return int.from_bytes(digest, "little") or 1


def empty_records(n: int = 0) -> np.ndarray:
    """An array of ``n`` zeroed records."""
    return np.zeros(n, dtype=RECORD_DTYPE)


def pack_records(
    event: np.ndarray, time: np.ndarray, kind: np.ndarray, value: np.ndarray, aux: np.ndarray
) -> bytes:
    """Pack column arrays into a row's bytes."""
    records = np.empty(len(event), dtype=RECORD_DTYPE)
    records["event"] = event
    records["time"] = time
    records["type"] = kind
    records["value"] = np.minimum(value, MAX_VALUE)
    records["aux"] = aux
    return records.tobytes()


def unpack_row(row: bytes) -> np.ndarray:
    """A row's bytes as a read-only structured array of records."""
    if len(row) % RECORD_SIZE:
        raise ValueError(f"row length {len(row)} is not a multiple of {RECORD_SIZE}")
    return np.frombuffer(row, dtype=RECORD_DTYPE)


class InteractionLog:
    """Every stored interaction record with the user it belongs to: the trainer's input.

    ``records[i]`` belongs to user ``user[i]``. For each user, the records appear in the
    order they were applied (Kafka offset order), which breaks ties between equal times.
    ``n_users`` and ``n_events`` are the sizes of the id maps (indices are below them).
    """

    __slots__ = ("n_events", "n_users", "records", "user")

    def __init__(self, user: np.ndarray, records: np.ndarray, n_users: int, n_events: int) -> None:
        if user.shape != records.shape:
            raise ValueError(f"user {user.shape} and records {records.shape} differ in shape")
        if records.dtype != RECORD_DTYPE:
            raise ValueError(f"records must have dtype RECORD_DTYPE, not {records.dtype}")
        if len(user) and (int(user.max()) >= n_users or int(user.min()) < 0):
            raise ValueError("a user index is outside 0..n_users-1")
        if len(records) and int(records["event"].max()) >= n_events:
            raise ValueError("an event index is outside 0..n_events-1")
        self.user = user.astype(np.int32, copy=False)
        self.records = records
        self.n_users = n_users
        self.n_events = n_events

    def __len__(self) -> int:
        return len(self.records)

    @classmethod
    def from_columns(
        cls,
        user: np.ndarray,
        event: np.ndarray,
        kind: np.ndarray,
        value: np.ndarray,
        time: np.ndarray,
        aux: np.ndarray | None = None,
        *,
        n_users: int | None = None,
        n_events: int | None = None,
    ) -> InteractionLog:
        """Build a log from aligned columns (``kind`` holds ``TYPE_*`` codes)."""
        records = np.empty(len(event), dtype=RECORD_DTYPE)
        records["event"] = event
        records["time"] = time
        records["type"] = kind
        records["value"] = np.minimum(value, MAX_VALUE)
        records["aux"] = 0 if aux is None else aux
        user = np.asarray(user, dtype=np.int32)
        return cls(
            user,
            records,
            int(user.max()) + 1 if n_users is None and len(user) else (n_users or 0),
            int(records["event"].max()) + 1 if n_events is None and len(event) else (n_events or 0),
        )

    def latest_time(self) -> float:
        """The latest record's time (0 for an empty log): every fit's default clock."""
        return float(self.records["time"].max()) if len(self.records) else 0.0

    def subset(self, mask: np.ndarray) -> InteractionLog:
        """The records where ``mask`` is true, keeping order and index spaces."""
        return InteractionLog(self.user[mask], self.records[mask], self.n_users, self.n_events)


def pair_keys(log: InteractionLog) -> np.ndarray:
    """One int64 key per record naming its (user, event) pair: ``user * n_events + event``."""
    keys: np.ndarray = log.user.astype(np.int64) * max(log.n_events, 1) + log.records[
        "event"
    ].astype(np.int64)
    return keys


def sorted_unique(values: np.ndarray) -> np.ndarray:
    """``np.unique`` by sort: numpy 2.4's hash-based unique is ~100x slower on 5M keys."""
    ordered = np.sort(values, kind="stable")
    if len(ordered) == 0:
        return ordered
    first = np.empty(len(ordered), dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    return ordered[first]


def interacted_pairs(log: InteractionLog) -> sp.csr_matrix:
    """Bool (n_users, n_events): pairs with any record, as the protocol excludes them."""
    matrix = sp.csr_matrix(
        (np.ones(len(log), dtype=bool), (log.user, log.records["event"].astype(np.int64))),
        shape=(log.n_users, log.n_events),
        dtype=bool,
    )
    matrix.sum_duplicates()
    return matrix


def event_popularity(log: InteractionLog) -> npt.NDArray[np.int64]:
    """Distinct users per event with any record other than a dismissal, shape (n_events,)."""
    keys = pair_keys(log)[log.records["type"] != TYPE_DISMISS]
    events = sorted_unique(keys) % max(log.n_events, 1)
    return np.bincount(events, minlength=log.n_events).astype(np.int64)
