"""The Redis layout: id maps, matrix rows, catalog, profiles, and their atomic steps."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import redis

from eventrec.errors import ConfigError
from eventrec.model.records import RECORD_DTYPE, RECORD_SIZE, InteractionLog, unpack_row
from eventrec.store import scripts
from eventrec.store.client import (
    REDIS_ERRORS,
    RETRY_ON_NODE,
    UNAVAILABLE_ERRORS,
    RedisClient,
    is_cluster_client,
    node_settings,
    per_node,
)
from eventrec.store.client import connect as connect  # re-exported: every process's client
from eventrec.store.keys import OWNER_SHARDS, Keys, owner_shard

log = logging.getLogger(__name__)

NO_HASH = b"\0" * 8
EVICTING_POLICIES_OK = ("noeviction",)
SNAPSHOT_CHUNK = 2000
# A claim that meets a moved slot is retried this often on a fresh slot map.
FAILOVER_ATTEMPTS = 3


def interaction_hash(interaction_id: str) -> bytes:
    """The 8-byte hash of one string (never all zero); see :func:`dedup_hash`."""
    digest = hashlib.blake2b(interaction_id.encode("utf-8"), digest_size=8).digest()
    return digest if digest != NO_HASH else b"\0" * 7 + b"\1"


def dedup_hash(user_id: str, interaction_id: str) -> bytes:
    """The de-duplication key of an interaction: (user, ``interaction_id``), 8 bytes.

    Producers choose ids; two users who pick the same one must both count.
    """
    return interaction_hash(f"{user_id}\x1f{interaction_id}")


@dataclass(frozen=True)
class Snapshot:
    """Every user's records with dense indices, and what those indices name.

    ``log.user`` indexes ``user_ids`` and ``log.records["event"]`` indexes ``event_ids``;
    ``taken_at`` is the wall-clock instant the snapshot started (decays anchor to it).
    """

    log: InteractionLog
    user_ids: list[str]
    event_ids: list[str]
    taken_at: float


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
    row_users: list[str | int] = field(default_factory=list)
    searches: list[tuple[int, bytes, str]] = field(default_factory=list)
    search_users: list[str | int] = field(default_factory=list)
    dead_lettered: int = 0
    routed: int = 0
    # True when ``expected_offset`` was read from Redis (the consumer resumes a partition):
    # a missing stored offset then means Redis lost the partition's writes, and the step is
    # fenced. False: the batch may start the partition (nothing stored yet).
    resumes: bool = False
    # Every event the batch's valid messages name, in offset order. When set, each
    # record's event field holds a 1-based position in it, resolved by the step.
    event_ids: list[str] = field(default_factory=list)
    _row_slot: dict[str | int, int] = field(default_factory=dict)
    _search_slot: dict[str | int, int] = field(default_factory=dict)

    def add_record(self, user: str | int, payload: bytes, id_hash: bytes) -> None:
        slot = self._row_slot.get(user)
        if slot is None:
            self.row_users.append(user)
            slot = self._row_slot[user] = len(self.row_users)
        self.payloads.append(payload)
        self.slots.append(slot)
        self.hashes.append(id_hash)

    def add_records(
        self, users: Sequence[str | int], records: bytes, id_hashes: Sequence[bytes]
    ) -> None:
        """Add many packed records at once; ``users[i]`` owns the i-th record."""
        for user in users:
            if user not in self._row_slot:
                self.row_users.append(user)
                self._row_slot[user] = len(self.row_users)
        self.payloads.append(records)
        self.slots.extend(self._row_slot[user] for user in users)
        self.hashes.extend(id_hashes)

    def add_search(self, user: str | int, query: str, id_hash: bytes) -> None:
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
    routed: int = 0


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
        claim_replicas: int = 0,
        claim_wait_ms: int = 1000,
    ) -> None:
        # redis-py types replies as bytes | str by connection options; ours are bytes.
        self.client: Any = client
        self.keys = Keys(prefix)
        self.dedup_window_seconds = dedup_window_seconds
        self.search_cap = search_cap
        self.compact_threshold_bytes = compact_threshold_bytes
        self.claim_replicas = claim_replicas if is_cluster_client(client) else 0
        self.claim_wait_ms = claim_wait_ms
        self.claims_not_replicated = 0
        # Per cluster node, one connection of our own: WAIT counts the replicas that have
        # this connection's writes, so the claim and its WAIT must share a connection.
        self._claim_connections: dict[str, Any] = {}
        self._claim_owners = client.register_script(scripts.CLAIM_OWNERS)
        self._apply_interactions = client.register_script(scripts.APPLY_INTERACTIONS)
        self._apply_entities = client.register_script(scripts.APPLY_ENTITIES)
        self._replace_row = client.register_script(scripts.REPLACE_ROW)
        self._reset_offset = client.register_script(scripts.RESET_OFFSET)

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

    # -- owners and partition-local event ids (nothing here is cached) -----------------

    def claim_owners(self, user_ids: Sequence[str], partition: int) -> list[int]:
        """The owner partition of each user; users never seen are claimed for ``partition``.

        One script per owner shard the users fall in (each on its own slot). On a cluster
        with ``claim_replicas``, a shard's claims are not trusted until that many replicas
        acknowledged them (``WAIT``, up to ``claim_wait_ms``): a failover must not lose a
        claim whose row survives on another master (docs/design.md). Call it from one
        thread (the consumer's writer).
        """
        by_shard: dict[int, list[str]] = {}
        for user_id in dict.fromkeys(user_ids):
            by_shard.setdefault(owner_shard(user_id), []).append(user_id)
        found: dict[str, int] = {}
        for shard, users in sorted(by_shard.items()):
            keys = [self.keys.owner_shard(shard), self.keys.user_partitions(shard)]
            if self.claim_replicas:
                reply = self._claim_replicated(keys, [partition, *users])
            else:
                reply = self._claim_owners(keys=keys, args=[partition, *users])
            found.update(zip(users, (int(o) for o in reply[1:]), strict=True))
        return [found[u] for u in user_ids]

    def close_claim_connections(self) -> None:
        """Give back the claim connections (:meth:`claim_owners` reopens them on demand)."""
        for connection in self._claim_connections.values():
            connection.close()
        self._claim_connections.clear()

    def _claim_replicated(self, keys: list[str], args: list[Any]) -> list[int]:
        """The claim script, then (when it claimed) ``WAIT`` on the same connection."""
        for attempt in range(FAILOVER_ATTEMPTS):
            node = self.client.get_node_from_key(keys[0])
            connection = self._claim_connections.get(node.name)
            if connection is None:
                pool = self.client.get_redis_connection(node).connection_pool
                connection = redis.Redis(connection_pool=pool, single_connection_client=True)
                self._claim_connections[node.name] = connection
            try:
                reply: list[int] = self._claim_owners(keys=keys, args=args, client=connection)
                if reply[0]:
                    acknowledged = int(connection.wait(self.claim_replicas, self.claim_wait_ms))
                    if acknowledged < self.claim_replicas:
                        self.claims_not_replicated += 1
                        log.warning(
                            "owner claims on %s reached %d of %d replicas within %d ms",
                            node.name,
                            acknowledged,
                            self.claim_replicas,
                            self.claim_wait_ms,
                        )
                return reply
            except RETRY_ON_NODE as exc:
                # A failover, or a slot that moved: a fresh connection, a fresh slot map.
                self._claim_connections.pop(node.name, None)
                connection.close()
                with contextlib.suppress(*REDIS_ERRORS):
                    self.client.nodes_manager.initialize()
                if isinstance(exc, UNAVAILABLE_ERRORS) or attempt == FAILOVER_ATTEMPTS - 1:
                    raise  # the caller retries with backoff
        raise AssertionError("unreachable")

    def find_owner(self, user_id: str) -> int | None:
        """The partition that owns a user's row, or None for a user never seen."""
        value = self.client.hget(self.keys.owner(user_id), user_id)
        return None if value is None else int(value)

    def owners(self) -> dict[str, int]:
        """Every user id that has an owner (a row, searches, or a routed interaction)."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(OWNER_SHARDS):
            pipe.hgetall(self.keys.owner_shard(shard))
        return {
            user.decode(): int(owner) for found in pipe.execute() for user, owner in found.items()
        }

    def user_ids(self) -> list[str]:
        """Every user id that has an owner (a row, searches, or a routed interaction)."""
        return list(self.owners())

    def owner_partitions(self) -> list[int]:
        """The interactions partitions that own users, ascending."""
        pipe = self.client.pipeline(transaction=False)
        for shard in range(OWNER_SHARDS):
            pipe.smembers(self.keys.user_partitions(shard))
        return sorted({int(p) for found in pipe.execute() for p in found})

    def partition_event_ids(self, topic: str, partition: int, start: int = 0) -> list[str]:
        """A partition's event ids by local index, from ``start``."""
        raw = self.client.lrange(self.keys.event_ids(topic, partition), start, -1)
        return [value.decode() for value in raw]

    def partition_users(self, topic: str, partition: int) -> list[str]:
        """The user ids with a row on a partition, in order of their first record."""
        return [
            raw.decode() for raw in self.client.lrange(self.keys.row_users(topic, partition), 0, -1)
        ]

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
        if len(batch.event_ids) >= 2**32:
            raise ValueError("too many events in one batch")
        args: list[Any] = [
            scripts.fence_argument(batch.expected_offset, batch.resumes),
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
            batch.routed,
            len(batch.event_ids),
            *batch.event_ids,
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
                keys.event_index(topic, partition),
                keys.event_ids(topic, partition),
                *row_keys,
                *search_keys,
            ],
            args=args,
        )
        scripts.check_fence(result, topic, partition, batch.expected_offset)
        compacted = 0
        if compact is not None:
            for slot in result[3:]:
                if self.compact_row(row_keys[int(slot) - 1], compact):
                    compacted += 1
        return StepResult(
            applied=int(result[1]),
            duplicates=int(result[2]),
            compacted=compacted,
            routed=batch.routed,
        )

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
        resumes: bool = False,
    ) -> StepResult:
        """Upsert (JSON) or delete (None) catalog events or profiles, exactly once.

        ``resumes``: as :attr:`InteractionBatch.resumes`.
        """
        keys = self.keys
        entity_key = (
            keys.catalog(topic, partition) if kind == "events" else keys.profiles(topic, partition)
        )
        self.client.sadd(keys.entity_partitions(topic), partition)
        args: list[Any] = [
            scripts.fence_argument(expected_offset, resumes),
            next_offset,
            keys.channel(topic),
            dead_lettered,
        ]
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
        scripts.check_fence(result, topic, partition, expected_offset)
        return StepResult(applied=int(result[1]) + int(result[2]), duplicates=0)

    def remove_entity_copies(
        self, kind: str, topic: str, partition: int, entity_ids: Sequence[str]
    ) -> int:
        """Delete these ids from every partition of the topic but ``partition``.

        Keyed messages of an entity all land on one partition; a copy elsewhere was left by
        a keyless message and would outlive the entity's deletion. Idempotent.
        """
        others = [
            int(p)
            for p in self.client.smembers(self.keys.entity_partitions(topic))
            if int(p) != partition
        ]
        if not others or not entity_ids:
            return 0
        # No announcement of its own: the step that follows bumps the topic's version.
        pipe = self.client.pipeline(transaction=False)
        for other in others:
            key = (
                self.keys.catalog(topic, other)
                if kind == "events"
                else self.keys.profiles(topic, other)
            )
            pipe.hdel(key, *entity_ids)
        removed = sum(int(n) for n in pipe.execute())
        return removed

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
        """(owner partition, records) of one user, or None for a user never seen.

        The records' event indices are local to the partition: see
        :meth:`partition_event_ids`.
        """
        partition = self.find_owner(user_id)
        if partition is None:
            return None
        row = self.client.get(self.keys.row(topic, partition, user_id))
        return partition, unpack_row(row or b"")

    def user_searches(self, topic: str, user_id: str) -> list[str]:
        partition = self.find_owner(user_id)
        if partition is None:
            return []
        key = self.keys.searches(topic, partition, user_id)
        return [q.decode() for q in self.client.lrange(key, 0, -1)]

    def snapshot(self, topic: str) -> Snapshot:
        """Every user's records with dense indices, read partition by partition.

        Per partition the rows are read first, then its event ids (which only grow while
        nothing is lost), so every local index a row holds is in the list read after it.
        A user with rows on two partitions is one user. On a cluster each partition (one
        slot) is read from its node with pipelined MGETs, the nodes in parallel.
        """
        taken_at = time.time()
        partitions = self.owner_partitions()

        def read(node: Any, i: int) -> tuple[list[str], list[bytes], list[str]]:
            partition = partitions[i]
            users = [
                raw.decode() for raw in node.lrange(self.keys.row_users(topic, partition), 0, -1)
            ]
            rows: list[bytes] = []
            for start in range(0, len(users), SNAPSHOT_CHUNK * 8):
                pipe = node.pipeline(transaction=False)
                chunk_users = users[start : start + SNAPSHOT_CHUNK * 8]
                for part in range(0, len(chunk_users), SNAPSHOT_CHUNK):
                    pipe.mget(
                        [
                            self.keys.row(topic, partition, u)
                            for u in chunk_users[part : part + SNAPSHOT_CHUNK]
                        ]
                    )
                rows.extend(row or b"" for found in pipe.execute() for row in found)
            local_events = [
                raw.decode() for raw in node.lrange(self.keys.event_ids(topic, partition), 0, -1)
            ]
            return users, rows, local_events

        user_position: dict[str, int] = {}
        event_position: dict[str, int] = {}
        user_chunks: list[np.ndarray] = []
        record_chunks: list[np.ndarray] = []
        tags = [self.keys.row_users(topic, p) for p in partitions]
        for partition, (users, rows, local_events) in zip(
            partitions, per_node(self.client, tags, read), strict=True
        ):
            dense_event = np.fromiter(
                (event_position.setdefault(e, len(event_position)) for e in local_events),
                dtype=np.int64,
                count=len(local_events),
            )
            dense_user = np.fromiter(
                (user_position.setdefault(u, len(user_position)) for u in users),
                dtype=np.int64,
                count=len(users),
            )
            lengths = np.fromiter((len(r) for r in rows), dtype=np.int64, count=len(rows))
            records = np.frombuffer(b"".join(rows), dtype=RECORD_DTYPE).copy()
            if len(records) and int(records["event"].max()) >= len(dense_event):
                raise ValueError(
                    f"{topic}[{partition}]: a row names an event index past the partition's "
                    f"{len(dense_event)} event ids"
                )
            records["event"] = dense_event[records["event"]]
            user_chunks.append(np.repeat(dense_user, lengths // RECORD_SIZE))
            record_chunks.append(records)
        records = (
            np.concatenate(record_chunks) if record_chunks else np.zeros(0, dtype=RECORD_DTYPE)
        )
        user = np.concatenate(user_chunks) if user_chunks else np.zeros(0, np.int64)
        log_ = InteractionLog(
            user.astype(np.int32), records, len(user_position), len(event_position)
        )
        return Snapshot(log_, list(user_position), list(event_position), taken_at)

    def memory_usage(self, pattern_names: Iterable[str]) -> int:
        """Bytes Redis reports for the given keys (MEMORY USAGE), for benchmarks."""
        pipe = self.client.pipeline(transaction=False)
        names = list(pattern_names)
        for name in names:
            pipe.memory_usage(name, samples=0)
        return sum(int(v or 0) for v in pipe.execute())
