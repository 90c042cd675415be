"""The compact records attribution keeps per user: one per impression, one per outcome.

An impression record is ``14 + 3 n`` bytes for ``n`` events shown (44 for ten):

====== ===== ===========================================================
offset bytes field
====== ===== ===========================================================
0      6     request hash: blake2b-48 of the response's ``request_id``
6      4     shown at, seconds since the epoch (uint32, little endian)
10     2     experiment code (uint16; 0 = in no experiment)
12     1     variant index within the experiment (uint8)
13     1     n, the number of events shown (uint8, at most 255)
14     3 n   event hashes (blake2b-24 of each ``event_id``), in shown order
====== ===== ===========================================================

A pending outcome (an interaction whose impression has not been seen yet) is 14 bytes:
request hash (6), event hash (3), time (uint32), outcome code (uint8).

The hashes only need to tell apart the impressions of one user within one window (48
bits: a collision among a heavy user's 10,000 impressions has odds of about 2e-7) and
the events of one response (24 bits: an interaction matches a wrong event of its
response with odds of n / 2^24, 6e-7 for ten).
The store's attribution script reads the same layout (``store.scripts``).
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

HEADER = struct.Struct("<6sIHBB")
PENDING = struct.Struct("<6s3sIB")
HEADER_SIZE = HEADER.size  # 14
PENDING_SIZE = PENDING.size  # 14
MAX_SHOWN = 255
MAX_EXPERIMENT_CODE = 2**16 - 1
MAX_TIME = 2**32 - 1
# Outcomes attribution counts, by code (0 is never used).
OUTCOME_CODES = {"view": 1, "save": 2, "booking": 3}


def request_hash(request_id: str) -> bytes:
    return hashlib.blake2b(request_id.encode(), digest_size=6).digest()


def event_hash(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode(), digest_size=3).digest()


def _seconds(epoch: float) -> int:
    return min(max(int(epoch), 0), MAX_TIME)


@dataclass(frozen=True)
class ImpressionRecord:
    request: bytes
    shown_at: int
    experiment: int
    variant: int
    events: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return HEADER_SIZE + 3 * len(self.events)


def pack_impression(
    request_id: str, shown_at: float, experiment: int, variant: int, event_ids: Sequence[str]
) -> bytes:
    if not 0 <= experiment <= MAX_EXPERIMENT_CODE:
        raise ValueError(f"experiment code {experiment} out of range")
    if not 0 <= variant <= 255:
        raise ValueError(f"variant index {variant} out of range")
    shown = event_ids[:MAX_SHOWN]
    return HEADER.pack(
        request_hash(request_id), _seconds(shown_at), experiment, variant, len(shown)
    ) + b"".join(event_hash(e) for e in shown)


def unpack_impressions(data: bytes) -> list[ImpressionRecord]:
    """Every record of a user's impression string, in stored order."""
    records = []
    offset = 0
    while offset + HEADER_SIZE <= len(data):
        request, shown_at, experiment, variant, n = HEADER.unpack_from(data, offset)
        start = offset + HEADER_SIZE
        events = tuple(data[start + 3 * i : start + 3 * i + 3] for i in range(n))
        records.append(ImpressionRecord(request, shown_at, experiment, variant, events))
        offset = start + 3 * n
    if offset != len(data):
        raise ValueError(f"truncated impression record at byte {offset} of {len(data)}")
    return records


def pack_pending(request_id: str, event_id: str, occurred_at: float, outcome: str) -> bytes:
    return PENDING.pack(
        request_hash(request_id),
        event_hash(event_id),
        _seconds(occurred_at),
        OUTCOME_CODES[outcome],
    )
