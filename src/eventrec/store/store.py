"""The Redis layout: id maps, matrix rows, catalog, profiles, and their atomic steps."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from eventrec.errors import ConfigError, FencedBatchError
from eventrec.model.records import RECORD_DTYPE, RECORD_SIZE, InteractionLog, unpack_row
from eventrec.store import scripts
from eventrec.store.client import RedisClient, node_settings, per_node
from eventrec.store.client import connect as connect  # re-exported: every process's client
from eventrec.store.keys import Keys

log = logging.getLogger(__name__)

NO_HASH = b"\0" * 8
EVICTING_POLICIES_OK = ("noeviction",)
SNAPSHOT_CHUNK = 2000


def user_location(value: bytes) -> tuple[int, int]:
    """(index, row partition) from a value of the user id map (``b"index:partition"``)."""
    index, partition = value.split(b":")
    return int(index), int(partition)


def interaction_hash(interaction_id: str) -> bytes:
    """The 8-byte de-duplication key of an ``interaction_id`` (never all zero)."""
    digest = hashlib.blake2b(interaction_id.encode("utf-8"), digest_size=8).digest()
    return digest if digest != NO_HASH else b"\0" * 7 + b"\1"


@dataclass
class InteractionBatch:
    """What one partition's batch writes: records grouped by user row, and searches."""

    topic: str
    partition: int
    expected_offset: int
    next_offset: int
    payloads: list[bytes] = field(default_factory=list)
    slots: list[int] = field(default_factory=list)
    hashes: list[bytes] = field(default_factory=list)
    row_users: list[int] = field(default_factory=list)
    searches: list[tuple[int, bytes, str]] = field(default_factory=list)
    search_users: list[int] = field(default_factory=list)
    dead_lettered: int = 0
    _row_slot: dict[int, int] = field(default_factory=dict)
    _search_slot: dict[int, int] = field(default_factory=dict)

    def add_record(self, user: int, payload: bytes, id_hash: bytes) -> None:
        slot = self._row_slot.get(user)
        if slot is None:
            self.row_users.append(user)
            slot = self._row_slot[user] = len(self.row_users)
        self.payloads.append(payload)
        self.slots.append(slot)
        self.hashes.append(id_hash)

    def add_records(self, users: Sequence[int], records: bytes, id_hashes: Sequence[bytes]) -> None:
        """Add many packed records at once; ``users[i]`` owns the i-th record."""
        for user in users:
            if user not in self._row_slot:
                self.row_users.append(user)
                self._row_slot[user] = len(self.row_users)
        self.payloads.append(records)
        self.slots.extend(self._row_slot[user] for user in users)
        self.hashes.extend(id_hashes)

    def add_search(self, user: int, query: str, id_hash: bytes) -> None:
        slot = self._search_slot.get(user)
        if slot is None:
            self.search_users.append(user)
            slot = self._search_slot[user] = len(self.search_users)
        self.searches.append((slot, id_hash, query))


@dataclass(frozen=True)
class StepResult:
    applied: int
    duplicates: int
    compacted: int = 0


class Store:
    """The one place that knows eventrec's Redis keys; shared by every process."""

    def __init__(
        self,
        client: RedisClient,
        prefix: str,
        *,
        dedup_window_seconds: float = 86_400,
        search_cap: int = 20,
        compact_threshold_bytes: int = 4096,
    ) -> None:
        # redis-py types replies as bytes | str by connection options; ours are bytes.
        self.client: Any = client
        self.keys = Keys(prefix)
        self.dedup_window_seconds = dedup_window_seconds
        self.search_cap = search_cap
        self.compact_threshold_bytes = compact_threshold_bytes
        self._assign = client.register_script(scripts.ASSIGN_IDS)
        self._apply_interactions = client.register_script(scripts.APPLY_INTERACTIONS)
        self._apply_entities = client.register_script(scripts.APPLY_ENTITIES)
        self._replace_row = client.register_script(scripts.REPLACE_ROW)
        self._reset_offset = client.register_script(scripts.RESET_OFFSET)
        self._users: dict[str, tuple[int, int]] = {}
        self._events: dict[str, int] = {}

    # -- checks --------------------------------------------------------------------------

    def check_eviction_policy(self) -> None:
        """Refuse a server that may evict keys: an evicted offset would replay a partition.

        On a cluster every master is checked (run replicas with the same setting).
        """
        for node, policy in node_settings(self.client, "maxmemory-policy").items():
            if policy not in EVICTING_POLICIES_OK:
                where = f" on node {node}" if node else ""
                raise ConfigError(
                    f"Redis maxmemory-policy is {policy!r}{where}; eventrec needs 'noeviction' "
                    f"(an evicted offset or row would replay or lose interactions). "
                    f"Run: CONFIG SET maxmemory-policy noeviction"
                )

    # -- id maps -------------------------------------------------------------------------

    def user_indices(self, user_ids: Sequence[str], partition: int) -> list[tuple[int, int]]:
        """(index, row partition) of each user, created on first sight with ``partition``."""
        missing = list(dict.fromkeys(u for u in user_ids if u not in self._users))
        if missing:
            values = self._assign(
                keys=[self.keys.user_index, self.keys.user_ids, self.keys.user_partitions],
                args=[str(partition), *missing],
            )
            for user_id, value in zip(missing, values, strict=True):
                self._users[user_id] = user_location(value)
        return [self._users[u] for u in user_ids]

    def event_indices(self, event_ids: Sequence[str]) -> list[int]:
        """The dense index of each event id, created on first sight."""
        missing = list(dict.fromkeys(e for e in event_ids if e not in self._events))
        if missing:
            values = self._assign(
                keys=[self.keys.event_index, self.keys.event_ids], args=["", *missing]
            )
            for event_id, value in zip(missing, values, strict=True):
                self._events[event_id] = int(value)
        return [self._events[e] for e in event_ids]

    def find_user(self, user_id: str) -> tuple[int, int] | None:
        """(index, row partition) of a known user, or None."""
        value = self.client.hget(self.keys.user_index, user_id)
        return None if value is None else user_location(value)

    def find_event(self, event_id: str) -> int | None:
        value = self.client.hget(self.keys.event_index, event_id)
        return None if value is None else int(value)

    def event_ids(self, start: int = 0) -> list[str]:
        """Event ids by index, from ``start`` (the list only grows)."""
        return [raw.decode() for raw in self.client.lrange(self.keys.event_ids, start, -1)]

    def user_ids(self) -> list[str]:
        return [raw.decode() for raw in self.client.lrange(self.keys.user_ids, 0, -1)]

    # -- offsets -------------------------------------------------------------------------

    def stored_offset(self, topic: str, partition: int) -> int | None:
        value = self.client.get(self.keys.offset(topic, partition))
        return None if value is None else int(value)

    def stored_offsets(self, topic: str, partitions: Iterable[int]) -> dict[int, int | None]:
        partitions = list(partitions)
        pipe = self.client.pipeline(transaction=False)
        for partition in partitions:
            pipe.get(self.keys.offset(topic, partition))
        values = pipe.execute()
        return {p: None if v is None else int(v) for p, v in zip(partitions, values, strict=True)}

    def reset_offset(self, topic: str, partition: int, old: int | None, new: int) -> bool:
        """Move a stored offset (after an out-of-range reset) unless it changed meanwhile."""
        return bool(
            self._reset_offset(
                keys=[self.keys.offset(topic, partition)],
                args=["" if old is None else old, new],
            )
        )

    def stats(self, topic: str, partition: int) -> dict[str, int]:
        raw = self.client.hgetall(self.keys.stats(topic, partition))
        return {k.decode(): int(v) for k, v in raw.items()}

    # -- the interactions step -----------------------------------------------------------

    def apply_interactions(
        self,
        batch: InteractionBatch,
        now: float,
        compact: Callable[[np.ndarray], np.ndarray] | None = None,
    ) -> StepResult:
        """Write a batch's records, de-duplication keys and next offset in one atomic step.

        Raises :class:`FencedBatchError` when the stored offset is not the batch's expected
        offset: another consumer applied this partition meanwhile.
        """
        topic, partition, keys = batch.topic, batch.partition, self.keys
        window = max(1, int(self.dedup_window_seconds))
        bucket = int(now) // window
        row_keys = [keys.row(topic, partition, user) for user in batch.row_users]
        search_keys = [keys.searches(topic, partition, user) for user in batch.search_users]
        args: list[Any] = [
            batch.expected_offset,
            batch.next_offset,
            2 * window + 60,
            len(row_keys),
            len(search_keys),
            self.search_cap,
            self.compact_threshold_bytes,
            batch.dead_lettered,
            b"".join(batch.payloads),
            np.asarray(batch.slots, dtype=">u2").tobytes(),
            b"".join(batch.hashes),
            *batch.row_users,
        ]
        for slot, id_hash, query in batch.searches:
            args.extend((slot, id_hash, query))
        result = self._apply_interactions(
            keys=[
                keys.offset(topic, partition),
                keys.stats(topic, partition),
                keys.row_users(topic, partition),
                keys.dedup(topic, partition, bucket),
                keys.dedup(topic, partition, bucket - 1),
                *row_keys,
                *search_keys,
            ],
            args=args,
        )
        if result[0] == 0:
            raise FencedBatchError(
                f"{topic}[{partition}]: stored offset {int(result[1])} is not the batch's "
                f"expected offset {batch.expected_offset}"
            )
        compacted = 0
        if compact is not None:
            for slot in result[3:]:
                if self.compact_row(row_keys[int(slot) - 1], compact):
                    compacted += 1
        return StepResult(applied=int(result[1]), duplicates=int(result[2]), compacted=compacted)

    def compact_row(self, key: str, compact: Callable[[np.ndarray], np.ndarray]) -> bool:
        """Rewrite one row compacted, unless it changed meanwhile (then the next batch will)."""
        old = self.client.get(key)
        if old is None:
            return False
        new = compact(unpack_row(old)).astype(RECORD_DTYPE, copy=False).tobytes()
        if len(new) >= len(old):
            return False
        return bool(self._replace_row(keys=[key], args=[old, new]))

    # -- catalog and profiles ------------------------------------------------------------

    def apply_entities(
        self,
        kind: str,
        topic: str,
        partition: int,
        expected_offset: int,
        next_offset: int,
        changes: Sequence[tuple[str, bytes | None]],
        dead_lettered: int = 0,
    ) -> StepResult:
        """Upsert (JSON) or delete (None) catalog events or profiles, exactly once."""
        keys = self.keys
        entity_key = (
            keys.catalog(topic, partition) if kind == "events" else keys.profiles(topic, partition)
        )
        self.client.sadd(keys.entity_partitions(topic), partition)
        args: list[Any] = [expected_offset, next_offset, keys.channel(topic), dead_lettered]
        for entity_id, document in changes:
            args.extend((entity_id, document if document is not None else b""))
        result = self._apply_entities(
            keys=[
                keys.offset(topic, partition),
                keys.stats(topic, partition),
                entity_key,
                keys.version(topic, partition),
            ],
            args=args,
        )
        if result[0] == 0:
            raise FencedBatchError(
                f"{topic}[{partition}]: stored offset {int(result[1])} is not the batch's "
                f"expected offset {expected_offset}"
            )
        return StepResult(applied=int(result[1]) + int(result[2]), duplicates=0)

    def entity_documents(self, kind: str, topic: str) -> dict[str, bytes]:
        """Every stored event (``kind="events"``) or profile (``"users"``): id -> JSON."""
        partitions = sorted(
            int(p) for p in self.client.smembers(self.keys.entity_partitions(topic))
        )
        pipe = self.client.pipeline(transaction=False)
        for partition in partitions:
            key = (
                self.keys.catalog(topic, partition)
                if kind == "events"
                else self.keys.profiles(topic, partition)
            )
            pipe.hgetall(key)
        documents: dict[str, bytes] = {}
        for found in pipe.execute():
            documents.update({k.decode(): v for k, v in found.items()})
        return documents

    def profile_document(self, topic: str, user_id: str, partitions: int) -> bytes | None:
        """A user's profile JSON, looked up in every partition in one round trip."""
        pipe = self.client.pipeline(transaction=False)
        for partition in range(partitions):
            pipe.hget(self.keys.profiles(topic, partition), user_id)
        return next((doc for doc in pipe.execute() if doc is not None), None)

    def entity_version(self, topic: str) -> int:
        """Sum of the change counters of a catalog/profile topic: changes when anything does."""
        partitions = [int(p) for p in self.client.smembers(self.keys.entity_partitions(topic))]
        if not partitions:
            return 0
        # One GET per partition in one pipeline: the counters sit in different slots (a
        # cluster answers them node by node, in parallel).
        pipe = self.client.pipeline(transaction=False)
        for partition in partitions:
            pipe.get(self.keys.version(topic, partition))
        return sum(int(v) for v in pipe.execute() if v is not None)

    # -- reading rows --------------------------------------------------------------------

    def user_row(self, topic: str, user_id: str) -> tuple[int, np.ndarray] | None:
        """(user index, records) of one user, or None for a user with no row."""
        found = self.find_user(user_id)
        if found is None:
            return None
        index, partition = found
        row = self.client.get(self.keys.row(topic, partition, index))
        return index, unpack_row(row or b"")

    def user_searches(self, topic: str, user_id: str) -> list[str]:
        found = self.find_user(user_id)
        if found is None:
            return []
        index, partition = found
        return [
            q.decode()
            for q in self.client.lrange(self.keys.searches(topic, partition, index), 0, -1)
        ]

    def snapshot(self, topic: str) -> InteractionLog:
        """Every user's records as one :class:`InteractionLog`, read in pipelined chunks.

        On a cluster the partitions are read node by node, the nodes in parallel.
        """
        partitions = sorted(int(p) for p in self.client.smembers(self.keys.user_partitions))

        def read(node: Any, i: int) -> tuple[np.ndarray, list[bytes]]:
            partition = partitions[i]
            users = np.array(
                node.lrange(self.keys.row_users(topic, partition), 0, -1), dtype=np.int64
            )
            rows: list[bytes] = []
            for start in range(0, len(users), SNAPSHOT_CHUNK * 8):
                pipe = node.pipeline(transaction=False)
                chunk_users = users[start : start + SNAPSHOT_CHUNK * 8]
                for part in range(0, len(chunk_users), SNAPSHOT_CHUNK):
                    pipe.mget(
                        [
                            self.keys.row(topic, partition, int(u))
                            for u in chunk_users[part : part + SNAPSHOT_CHUNK]
                        ]
                    )
                rows.extend(row or b"" for found in pipe.execute() for row in found)
            return users, rows

        tags = [self.keys.row_users(topic, p) for p in partitions]
        user_chunks: list[np.ndarray] = []
        row_chunks: list[bytes] = []
        for users, rows in per_node(self.client, tags, read):
            lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
            user_chunks.append(np.repeat(users, lengths // RECORD_SIZE))
            row_chunks.append(b"".join(rows))
        # Id maps only grow: read their sizes after the rows, so every index is inside them.
        n_users = int(self.client.llen(self.keys.user_ids))
        n_events = int(self.client.llen(self.keys.event_ids))
        records = np.frombuffer(b"".join(row_chunks), dtype=RECORD_DTYPE)
        user = np.concatenate(user_chunks) if user_chunks else np.zeros(0, np.int64)
        return InteractionLog(user.astype(np.int32), records, n_users, n_events)

    def memory_usage(self, pattern_names: Iterable[str]) -> int:
        """Bytes Redis reports for the given keys (MEMORY USAGE), for benchmarks."""
        pipe = self.client.pipeline(transaction=False)
        names = list(pattern_names)
        for name in names:
            pipe.memory_usage(name, samples=0)
        return sum(int(v or 0) for v in pipe.execute())
