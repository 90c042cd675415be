"""The group's rebalance callbacks, handed on to the consumer's public methods."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from kafka import TopicPartition
from kafka.consumer.subscription_state import ConsumerRebalanceListener

PartitionsCallback = Callable[[list[TopicPartition]], None]


class Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]
    def __init__(self, revoked: PartitionsCallback, assigned: PartitionsCallback) -> None:
        self._revoked = revoked
        self._assigned = assigned

    def on_partitions_revoked(self, revoked: Any) -> None:
        self._revoked(list(revoked))

    def on_partitions_assigned(self, assigned: Any) -> None:
        self._assigned(list(assigned))
