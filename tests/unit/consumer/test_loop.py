"""The consumer loop's pieces that need neither Kafka nor Redis."""

from __future__ import annotations

from eventrec.consumer.loop import _compact
from eventrec.model.records import TYPE_SAVE, TYPE_VIEW, empty_records


def test_compaction_folds_a_rows_repeated_views_into_one_record() -> None:
    records = empty_records(4)
    records["event"] = [5, 5, 5, 7]
    records["time"] = [10, 20, 30, 40]
    records["type"] = [TYPE_VIEW, TYPE_VIEW, TYPE_VIEW, TYPE_SAVE]
    records["value"] = 1
    compacted = _compact(records)
    assert compacted["event"].tolist() == [5, 7]
    assert compacted["type"].tolist() == [TYPE_VIEW, TYPE_SAVE]
    assert compacted["value"].tolist() == [3, 1]  # three views, one save
    assert compacted["time"].tolist() == [30, 40]  # each pair's latest
