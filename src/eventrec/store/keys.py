"""Every Redis key name eventrec uses. No other module spells a key.

Keys that one atomic consumer step touches carry the hash tag of the step's Kafka
partition (``{interactions.3.2}``: :func:`spread_tag`), so a step stays in one slot on
Redis Cluster: a partition's rows, its event index and its offset are written together
(docs/design.md), and a topic's partitions are spread evenly over a cluster's masters.
The owner map carries tags of its own (``{users.k}``, one per shard): its script touches
one shard.
"""

from __future__ import annotations

import binascii
from dataclasses import dataclass
from functools import lru_cache

CLUSTER_SLOTS = 16384
# Where the tags of consecutive partitions go: six equal segments of the slot space, in
# this order, so that masters holding equal contiguous slot ranges (as `redis-cli
# --cluster create` makes them) share partitions evenly: with three masters each gets
# one of every three partitions; with two or six, one of every six.
_SEGMENT_ORDER = (0, 2, 4, 1, 3, 5)
# Off a segment's edges: redis-cli's ranges do not fall exactly on sixths.
_SEGMENT_MARGIN = 32


def hash_slot(tag: str) -> int:
    """The Redis Cluster slot of a hash tag (CRC16 mod 16384, as the cluster computes it)."""
    return binascii.crc_hqx(tag.encode(), 0) % CLUSTER_SLOTS


# Shards of the owner map (a stored layout: changing it moves every user's owner).
OWNER_SHARDS = 6


def owner_shard(user_id: str) -> int:
    """The owner-map shard of a user id (CRC32, stable across processes and releases)."""
    return binascii.crc32(user_id.encode()) % OWNER_SHARDS


@lru_cache(maxsize=65_536)
def spread_tag(base: str, index: int) -> str:
    """The hash tag of ``base``'s ``index``-th partition: ``base.index[.salt]``.

    The smallest salt that puts the tag in its segment (see ``_SEGMENT_ORDER``), so a
    cluster's masters get their share of partitions instead of CRC16's draw (the default
    topic's six partitions would otherwise put four on one of three masters). A pure
    function of its arguments: every process computes the same keys.
    """
    segment = _SEGMENT_ORDER[index % len(_SEGMENT_ORDER)]
    low = segment * CLUSTER_SLOTS // len(_SEGMENT_ORDER) + _SEGMENT_MARGIN
    high = (segment + 1) * CLUSTER_SLOTS // len(_SEGMENT_ORDER) - _SEGMENT_MARGIN
    tag, salt = f"{base}.{index}", 0
    while not low <= hash_slot(tag) < high:
        salt += 1
        tag = f"{base}.{index}.{salt}"
    return tag


@dataclass(frozen=True)
class Keys:
    prefix: str

    # -- owners (a routing hint: which interactions partition holds a user's row) ------
    # Split in OWNER_SHARDS hashes by user id, each on a slot of its own: every batch
    # claims owners, and one slot would make one master do that for every partition.

    def owner(self, user_id: str) -> str:
        """Hash user_id -> the interactions partition that owns the user's row (first claim),
        for the shard of ``user_id``."""
        return self.owner_shard(owner_shard(user_id))

    def owner_shard(self, shard: int) -> str:
        return f"{self.prefix}:{{{spread_tag('users', shard)}}}:owner"

    def user_partitions(self, shard: int) -> str:
        """Set of the interactions partitions that own users of one owner shard."""
        return f"{self.prefix}:{{{spread_tag('users', shard)}}}:partitions"

    # -- per partition -------------------------------------------------------------------

    def _tagged(self, topic: str, partition: int, name: str) -> str:
        return f"{self.prefix}:{{{spread_tag(topic, partition)}}}:{name}"

    def offset(self, topic: str, partition: int) -> str:
        """The partition's next offset to apply: the consumer's fence and resume point."""
        return self._tagged(topic, partition, "offset")

    def stats(self, topic: str, partition: int) -> str:
        """Hash of counters: processed, deduplicated, dead_lettered, batches."""
        return self._tagged(topic, partition, "stats")

    def row(self, topic: str, partition: int, user: str | int) -> str:
        """A user's interaction records, appended (see ``model.records``); keyed by user id.

        Their event indices are local to the partition (see :meth:`event_ids`).
        """
        return self._tagged(topic, partition, f"row:{user}")

    def row_prefix(self, topic: str, partition: int) -> str:
        """Every row key of the partition begins so: ``row_prefix(t, p) + u == row(t, p, u)``."""
        return self._tagged(topic, partition, "row:")

    def row_users(self, topic: str, partition: int) -> str:
        """List of the user ids that have a row in this partition, in order of first record."""
        return self._tagged(topic, partition, "users")

    def event_index(self, topic: str, partition: int) -> str:
        """Hash event_id -> the partition-local event index its records carry."""
        return self._tagged(topic, partition, "event-index")

    def event_ids(self, topic: str, partition: int) -> str:
        """List: position = partition-local event index, value = event_id."""
        return self._tagged(topic, partition, "event-ids")

    def searches(self, topic: str, partition: int, user: str | int) -> str:
        """A user's recent search queries, newest first, capped."""
        return self._tagged(topic, partition, f"searches:{user}")

    def dedup(self, topic: str, partition: int, bucket: int) -> str:
        """Set of (user, interaction id) hashes seen in one de-duplication time bucket."""
        return self._tagged(topic, partition, f"dedup:{bucket}")

    def catalog(self, topic: str, partition: int) -> str:
        """Hash event_id -> event JSON, for the events of one partition of the catalog topic."""
        return self._tagged(topic, partition, "catalog")

    def profiles(self, topic: str, partition: int) -> str:
        """Hash user_id -> profile JSON, for one partition of the users topic."""
        return self._tagged(topic, partition, "profiles")

    def version(self, topic: str, partition: int) -> str:
        """Counter bumped on every change applied from this partition (catalog, profiles)."""
        return self._tagged(topic, partition, "version")

    def entity_partitions(self, topic: str) -> str:
        """Set of the partitions of a catalog/profile topic that hold entities."""
        return f"{self.prefix}:{{{topic}}}:partitions"

    # -- attribution (per impressions partition; built by the attribution script) -------

    def attribution_base(self, topic: str, partition: int) -> str:
        """Prefix of a partition's attribution keys; the script appends:

        ``shown:<day>`` (hash: ``n`` buckets and ``entries`` of the day's table of
        impression records, days since the epoch) and its buckets ``shown:<day>:<b>``
        (hash response hash -> record, ``model.impressions``); ``pending:<day>`` and
        ``pending:<day>:<b>`` (the same for outcomes whose impression has not arrived);
        ``outcome-dedup:<bucket>`` (set of (user, interaction_id) hashes);
        ``exp:<code>:day:<day>`` (hash ``<variant>:<counter>`` of one day, counters
        ``impressions`` and ``<outcome>[:<position>]``) and
        ``exp:<code>:v<variant>:<counter>`` (hash user_id -> count, experiments only).
        """
        return self._tagged(topic, partition, "")

    def attribution_table(self, topic: str, partition: int, kind: str, day: int) -> str:
        """A day's table of ``shown`` impressions or ``pending`` outcomes (its counts)."""
        return self._tagged(topic, partition, f"{kind}:{day}")

    def attribution_bucket(self, table: str, bucket: int) -> str:
        """One bucket (hash) of a table."""
        return f"{table}:{bucket}"

    def attribution_tables(self, topic: str, partition: int, kind: str) -> str:
        """Glob of every key of one partition's tables of one kind."""
        return self._tagged(topic, partition, f"{kind}:*")

    def attribution_days(self, topic: str, partition: int, code: int) -> str:
        """Glob of an experiment's per-day count hashes on one partition."""
        return self._tagged(topic, partition, f"exp:{code}:day:*")

    def attribution_day(self, topic: str, partition: int, code: int, day: int) -> str:
        return self._tagged(topic, partition, f"exp:{code}:day:{day}")

    def attribution_users(
        self, topic: str, partition: int, code: int, variant: int, counter: str
    ) -> str:
        """Hash user_id -> count of one counter of one variant of an experiment."""
        return self._tagged(topic, partition, f"exp:{code}:v{variant}:{counter}")

    def attribution_partitions(self, topic: str) -> str:
        """Set of the impressions partitions that hold attribution data."""
        return f"{self.prefix}:{{{topic}}}:partitions"

    # -- experiments (one hash tag: created, listed and stopped together) ---------------

    @property
    def experiments(self) -> str:
        """Hash experiment name -> JSON definition (``schemas.impressions.Experiment``)."""
        return f"{self.prefix}:{{experiments}}:definitions"

    @property
    def experiment_codes(self) -> str:
        """Counter whose INCR numbers each new experiment (its compact code)."""
        return f"{self.prefix}:{{experiments}}:codes"

    @property
    def experiments_version(self) -> str:
        """Counter bumped on every change of the experiments; serving reloads on it."""
        return f"{self.prefix}:{{experiments}}:version"

    # -- announcements -------------------------------------------------------------------

    def channel(self, topic: str) -> str:
        """Pub/sub channel announcing changes applied from ``topic``."""
        return f"{self.prefix}:changes:{topic}"

    def pattern(self) -> str:
        """Glob of every key of this deployment."""
        return f"{self.prefix}:*"

    # -- model versions and the trainer (one hash tag: a switch touches them together) --

    def _models(self, name: str) -> str:
        return f"{self.prefix}:{{models}}:{name}"

    @property
    def model_sequence(self) -> str:
        """Counter whose INCR numbers each new model version."""
        return self._models("sequence")

    @property
    def model_versions(self) -> str:
        """Sorted set of stored versions, scored by their sequence number."""
        return self._models("versions")

    @property
    def model_current(self) -> str:
        """The version serving uses; switched with one SET."""
        return self._models("current")

    @property
    def model_switches(self) -> str:
        """Counter bumped on every switch of the current version."""
        return self._models("switches")

    @property
    def model_channel(self) -> str:
        """Pub/sub channel announcing each switch (the message is the new version)."""
        return self._models("switched")

    def model_metadata(self, version: str) -> str:
        """JSON metadata of one version."""
        return self._models(f"version:{version}:meta")

    def model_arrays(self, version: str) -> str:
        """Hash array name -> raw bytes of one version (dtype and shape in the metadata)."""
        return self._models(f"version:{version}:arrays")

    @property
    def model_trending(self) -> str:
        """JSON of every event's trending score, rewritten on every trainer cycle."""
        return self._models("trending")

    @property
    def train_requests(self) -> str:
        """List of queued on-demand training requests."""
        return self._models("train-requests")

    @property
    def model_pin(self) -> str:
        """The pinned version: while set, the trainer stores versions but does not switch."""
        return self._models("pin")

    @property
    def train_running(self) -> str:
        """The data (stored offsets) the running fit read; coalesces requests for the same."""
        return self._models("train-running")

    @property
    def train_lock(self) -> str:
        """The trainer lock: a token with an expiry, held while one trainer fits."""
        return self._models("train-lock")

    @property
    def trainer_status(self) -> str:
        """JSON of the trainer's last cycle: outcome, reason, version, times."""
        return self._models("trainer-status")

    @property
    def trainer_history(self) -> str:
        """List of the trainer's recent cycles (JSON, newest first): the gate's decisions."""
        return self._models("trainer-history")
