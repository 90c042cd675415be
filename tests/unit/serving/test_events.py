"""Serving's event space: partition-local indices mapped densely, dropped on data loss."""

from __future__ import annotations

import numpy as np

from eventrec.model.records import RECORD_DTYPE
from eventrec.serving.events import EventSpace


def row(*events: int) -> np.ndarray:
    records = np.zeros(len(events), dtype=RECORD_DTYPE)
    records["event"] = events
    return records


def test_model_events_come_first_and_partitions_map_into_one_space() -> None:
    space = EventSpace(["m-0", "m-1"])
    space.extend(0, 0, ["x", "m-1"])
    space.extend(3, 0, ["m-1", "y", "x"])
    first = space.translate(0, row(0, 1))
    second = space.translate(3, row(2, 1, 0))
    assert first is not None
    assert second is not None
    assert first["event"].tolist() == [2, 1]
    assert second["event"].tolist() == [2, 3, 1]
    assert space.ids == ["m-0", "m-1", "x", "y"]
    assert space.translate(0, row(2)) is None  # past the table: read the tail first


def test_an_extension_read_against_an_older_table_is_ignored() -> None:
    space = EventSpace([])
    space.extend(1, 0, ["a", "b"])
    space.extend(1, 1, ["b", "c"])  # started before the first one landed
    assert space.known(1) == 2


def test_an_offset_gone_back_or_a_shorter_list_drops_the_partitions_table() -> None:
    space = EventSpace([])
    space.extend(2, 0, ["a", "b", "c"])
    assert not space.observe(2, 500, 3)
    assert not space.observe(2, 650, 4)
    # Redis restored from an older copy: the offset went back; the table may be stale.
    assert space.observe(2, 600, 4)
    assert space.known(2) == 0
    space.extend(2, 0, ["a", "d", "b"])
    translated = space.translate(2, row(1))
    assert translated is not None
    assert space.ids[int(translated["event"][0])] == "d"
    assert not space.observe(2, 610, 3)
    assert space.observe(2, 620, 2)  # the event list shrank: lost too
    assert space.losses == 2


def test_take_mapped_gives_what_the_tables_mapped_since_the_last_call() -> None:
    space = EventSpace(["m-0", "m-1"])
    assert space.take_mapped().tolist() == []
    space.extend(0, 0, ["x", "m-1"])
    space.extend(3, 0, ["m-1", "y"])
    assert space.take_mapped().tolist() == [1, 2, 3]  # m-1, x, y: each once, sorted
    assert space.take_mapped().tolist() == []
    space.extend(3, 2, ["m-0"])
    assert space.take_mapped().tolist() == [0]
    assert space.take_mapped(everything=True).tolist() == [0, 1, 2, 3]
    # Partition 3's table dropped (Redis lost data) and read again, shorter: from its start.
    assert space.observe(3, None, 1) is True
    space.extend(3, 0, ["y"])
    assert space.take_mapped().tolist() == [3]
