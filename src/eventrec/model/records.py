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
