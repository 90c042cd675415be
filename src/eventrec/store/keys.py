"""Every Redis key name eventrec uses. No other module spells a key.

Keys that one atomic consumer step touches carry the hash tag of the step's Kafka
partition (``{interactions.3}``), so a step stays in one slot on Redis Cluster: a
partition's rows, its event index and its offset are written together (docs/design.md).
The owner map carries a tag of its own (``{users}``): its script touches only it.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Keys:
    prefix: str

    # -- owners (a routing hint: which interactions partition holds a user's row) ------

    @property
    def owner(self) -> str:
        """Hash user_id -> the interactions partition that owns the user's row (first claim)."""
        return f"{self.prefix}:{{users}}:owner"

    @property
    def user_partitions(self) -> str:
        """Set of the interactions partitions that own users."""
        return f"{self.prefix}:{{users}}:partitions"

    # -- per partition -------------------------------------------------------------------

    def _tagged(self, topic: str, partition: int, name: str) -> str:
        return f"{self.prefix}:{{{topic}.{partition}}}:{name}"

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
    def train_lock(self) -> str:
        """The trainer lock: a token with an expiry, held while one trainer fits."""
        return self._models("train-lock")

    @property
    def trainer_status(self) -> str:
        """JSON of the trainer's last cycle: outcome, reason, version, times."""
        return self._models("trainer-status")
