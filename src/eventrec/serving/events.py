"""Serving's event index: partition-local event indices mapped into one dense space.

Rows name events by indices local to their owner partition (docs/design.md). Serving's
space holds the model's event ids first, so "known to the model" is ``index < n_model``,
then every other event id met, in order; ids never move inside a space. Per partition
a table maps local index to space index; it is a cache of Redis, so it is dropped when
Redis shows it lost data (the partition's stored offset went back, or its event list is
shorter than the table).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt

from eventrec.model.records import RECORD_DTYPE

_EMPTY = np.zeros(0, dtype=np.int64)


class EventSpace:
    """Event ids by space index, and per partition the local -> space table.

    ``ids`` is shared with the :class:`ServingState` that owns the space (it only grows).
    """

    def __init__(self, ids: list[str]) -> None:
        self.ids = ids
        self._index = {event_id: i for i, event_id in enumerate(ids)}
        self._tables: dict[int, npt.NDArray[np.int64]] = {}
        self._marks: dict[int, int] = {}
        self.losses = 0
        # Per partition, how much of its table :meth:`take_mapped` has returned.
        self._taken: dict[int, int] = {}

    def index_of(self, event_id: str) -> int:
        """The space index of an event id, appended when met for the first time."""
        index = self._index.get(event_id)
        if index is None:
            index = self._index[event_id] = len(self.ids)
            self.ids.append(event_id)
        return index

    def known(self, partition: int) -> int:
        """How many local indices of the partition the table maps."""
        return len(self._tables.get(partition, _EMPTY))

    def observe(self, partition: int, offset: int | None, list_length: int) -> bool:
        """Compare the partition's stored offset and event-list length with what was seen.

        Returns True (and drops the partition's table) when Redis lost data since.
        """
        mark = self._marks.get(partition)
        lost = (mark is not None and (offset is None or offset < mark)) or (
            list_length < self.known(partition)
        )
        if lost:
            self._tables.pop(partition, None)
            self._marks.pop(partition, None)
            self.losses += 1
        if offset is not None and (mark is None or lost or offset > mark):
            self._marks[partition] = offset
        return lost

    def extend(self, partition: int, start: int, event_ids: Sequence[str]) -> None:
        """Map the partition's local indices ``start, start + 1, ...`` to ``event_ids``."""
        table = self._tables.get(partition, _EMPTY)
        if start != len(table):
            return  # read against an older table: the next request reads again
        tail = np.fromiter(
            (self.index_of(e) for e in event_ids), dtype=np.int64, count=len(event_ids)
        )
        self._tables[partition] = np.concatenate((table, tail))

    def take_mapped(self, everything: bool = False) -> npt.NDArray[np.int64]:
        """The space indices the tables mapped since the last call (``everything``: all
        they map): events somebody has a record of, as far as the tables have read. A
        table dropped and read again is taken again from its start."""
        if everything:
            self._taken = {}
        pieces = []
        for partition, table in list(self._tables.items()):
            taken = self._taken.get(partition, 0)
            if taken > len(table):
                taken = 0  # dropped since (Redis lost data) and shorter now
            pieces.append(table[taken:])
            self._taken[partition] = len(table)
        return np.unique(np.concatenate(pieces)) if pieces else _EMPTY

    def translate(self, partition: int, records: np.ndarray) -> np.ndarray | None:
        """A copy of a row with space indices, or None if the table does not cover it."""
        table = self._tables.get(partition, _EMPTY)
        if len(records) and int(records["event"].max()) >= len(table):
            return None
        out = np.array(records, dtype=RECORD_DTYPE)
        out["event"] = table[records["event"]]
        return out
