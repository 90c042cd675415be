"""The compact records attribution keeps: one per impression, one per waiting outcome.

Both are named by a **response hash**: blake2b-48 of ``user_id`` and ``request_id``, so
one lookup finds a user's response without a key per user, and an outcome can only
meet an impression of its own user. An impression record is ``14 + 3 n`` bytes for
``n`` events shown (44 for ten):

====== ===== ===========================================================
offset bytes field
====== ===== ===========================================================
0      6     response hash (blake2b-48 of ``user_id`` NUL ``request_id``)
6      4     shown at, seconds since the epoch (uint32, little endian)
10     2     experiment code (uint16; 0 = in no experiment)
12     1     variant index within the experiment (uint8)
13     1     n, the number of events shown (uint8, at most 255)
14     3 n   event hashes (blake2b-24 of each ``event_id``), in shown order
====== ===== ===========================================================

Redis keeps the response hash as a hash field and, as its value, ``6 + 3 n`` bytes (36
for ten): seconds into the day of the table that holds it (3 bytes), experiment code,
variant index and the event hashes; cut in chunks of at most 63 bytes
(:func:`value_chunks`) so a hash of them stays a listpack under Redis's default
``hash-max-listpack-value`` (64).

A pending outcome (an interaction whose impression has not been seen yet) is 14 bytes:
response hash (6), event hash (3), time (uint32), outcome code (uint8); Redis keeps the
last 8 under the response hash.

The hashes only need to tell apart the responses of one day's table (48 bits: among a
table's 10⁸ responses a collision has odds of about 2e-5 and costs one impression
counted as a duplicate) and the events of one response (24 bits: an interaction matches
a wrong event of its response with odds of n / 2^24, 6e-7 for ten).
The store's attribution script reads the same layout (``store.attribution``).
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
RESPONSE_HASH_SIZE = 6
MAX_SHOWN = 255
MAX_EXPERIMENT_CODE = 2**16 - 1
MAX_TIME = 2**32 - 1
# Outcomes attribution counts, by code (0 is never used).
OUTCOME_CODES = {"view": 1, "save": 2, "booking": 3}
# A stored value's chunks: the first holds the 6-byte header and 19 events (63 bytes),
# each further one up to 21 events (63 bytes); a chunk shorter than 63 bytes is the last.
FIRST_CHUNK_EVENTS = 19
CHUNK_EVENTS = 21
STORED_HEADER = struct.Struct("<HBHB")  # seconds into the day (low 16 bits, high 8), code, variant
MAX_CHUNKS = 1 + -(-(MAX_SHOWN - FIRST_CHUNK_EVENTS) // CHUNK_EVENTS)


def response_hash(user_id: str, request_id: str) -> bytes:
    """The name of one response to one user in attribution's tables."""
    return hashlib.blake2b(f"{user_id}\x00{request_id}".encode(), digest_size=6).digest()


def event_hash(event_id: str) -> bytes:
    return hashlib.blake2b(event_id.encode(), digest_size=3).digest()


def _seconds(epoch: float) -> int:
    return min(max(int(epoch), 0), MAX_TIME)


@dataclass(frozen=True)
class ImpressionRecord:
    response: bytes
    shown_at: int
    experiment: int
    variant: int
    events: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return HEADER_SIZE + 3 * len(self.events)


def pack_impression(
    user_id: str,
    request_id: str,
    shown_at: float,
    experiment: int,
    variant: int,
    event_ids: Sequence[str],
) -> bytes:
    if not 0 <= experiment <= MAX_EXPERIMENT_CODE:
        raise ValueError(f"experiment code {experiment} out of range")
    if not 0 <= variant <= 255:
        raise ValueError(f"variant index {variant} out of range")
    shown = event_ids[:MAX_SHOWN]
    return HEADER.pack(
        response_hash(user_id, request_id), _seconds(shown_at), experiment, variant, len(shown)
    ) + b"".join(event_hash(e) for e in shown)


def unpack_impressions(data: bytes) -> list[ImpressionRecord]:
    """Every record of a concatenation of impression records, in order."""
    records = []
    offset = 0
    while offset + HEADER_SIZE <= len(data):
        response, shown_at, experiment, variant, n = HEADER.unpack_from(data, offset)
        start = offset + HEADER_SIZE
        events = tuple(data[start + 3 * i : start + 3 * i + 3] for i in range(n))
        records.append(ImpressionRecord(response, shown_at, experiment, variant, events))
        offset = start + 3 * n
    if offset != len(data):
        raise ValueError(f"truncated impression record at byte {offset} of {len(data)}")
    return records


def value_chunks(record: bytes) -> list[bytes]:
    """A record's stored value (all but its response hash), cut into listpack-sized chunks.

    Chunk ``k > 0`` is stored under the response hash followed by the byte ``k``.
    """
    _, shown_at, experiment, variant, _ = HEADER.unpack_from(record)
    seconds = shown_at % 86_400
    value = (
        STORED_HEADER.pack(seconds & 0xFFFF, seconds >> 16, experiment, variant)
        + record[HEADER_SIZE:]
    )
    first = STORED_HEADER.size + 3 * FIRST_CHUNK_EVENTS
    chunks = [value[:first]]
    for start in range(first, len(value), 3 * CHUNK_EVENTS):
        chunks.append(value[start : start + 3 * CHUNK_EVENTS])
    return chunks


def chunk_fields(response: bytes) -> list[bytes]:
    """The fields a record's further chunks may be stored under, in order."""
    return [response + bytes([k]) for k in range(1, MAX_CHUNKS)]


def stored_record(response: bytes, day: int, chunks: Sequence[bytes | None]) -> ImpressionRecord:
    """The record stored in ``day``'s table as ``chunks`` (the first, then the further
    ones as read; the first missing or short one ends it)."""
    first = chunks[0]
    if first is None:
        raise ValueError("no first chunk")
    value = [first]
    if len(first) == STORED_HEADER.size + 3 * FIRST_CHUNK_EVENTS:
        for chunk in chunks[1:]:
            if chunk is None:
                break
            value.append(chunk)
            if len(chunk) < 3 * CHUNK_EVENTS:
                break
    data = b"".join(value)
    low, high, experiment, variant = STORED_HEADER.unpack_from(data)
    events = data[STORED_HEADER.size :]
    return ImpressionRecord(
        response,
        day * 86_400 + low + (high << 16),
        experiment,
        variant,
        tuple(events[i : i + 3] for i in range(0, len(events), 3)),
    )


def pack_pending(
    user_id: str, request_id: str, event_id: str, occurred_at: float, outcome: str
) -> bytes:
    return PENDING.pack(
        response_hash(user_id, request_id),
        event_hash(event_id),
        _seconds(occurred_at),
        OUTCOME_CODES[outcome],
    )


def table_bucket(field: bytes, buckets: int) -> int:
    """The bucket of a hash field in a linear-hashing table of ``buckets`` buckets.

    A table (one partition's impressions of one day) starts with one bucket and splits
    one more off whenever it averages more than its load: bucket ``b`` splits into ``b``
    and ``b + 2^L`` (``2^L <= buckets < 2^(L+1)``), so no lookup ever reads more than
    one bucket and no split moves more than one bucket's fields. The field's first four
    bytes, little endian, are its hash. The store's script computes the same.
    """
    if buckets < 1:
        raise ValueError("a table has at least one bucket")
    h = int.from_bytes(field[:4], "little")
    low = 1 << (buckets.bit_length() - 1)
    bucket = h % (2 * low)
    return bucket if bucket < buckets else h % low
