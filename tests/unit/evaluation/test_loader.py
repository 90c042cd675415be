"""The CSV loader: column aliases, timestamps, types, rating scales and bad rows."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest

from eventrec.evaluation.loader import (
    EvaluationInputError,
    load_interactions,
    load_train_test,
    rating_to_record_value,
)
from eventrec.model.records import TYPE_BOOKING, TYPE_CODES, TYPE_RATING, TYPE_SAVE, TYPE_VIEW


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("user_column", ["user_id", "userId", "user"])
@pytest.mark.parametrize(
    "event_column", ["event_id", "item_id", "itemId", "movieId", "event", "item"]
)
def test_every_column_alias_is_accepted(
    tmp_path: Path, user_column: str, event_column: str
) -> None:
    path = write(
        tmp_path / "a.csv",
        f"timestamp,{event_column},extra,rating,{user_column}\n"
        "100,e1,x,5,u1\n"
        "200,e2,y,3,u1\n"
        "300,e1,z,4,u2\n",
    )
    rated, warning = load_interactions(path)
    assert warning is None
    assert list(rated.user_ids) == ["u1", "u2"]
    assert list(rated.event_ids) == ["e1", "e2"]
    assert rated.log.user.tolist() == [0, 0, 1]
    assert rated.log.records["event"].tolist() == [0, 1, 0]
    assert rated.log.records["type"].tolist() == [TYPE_RATING] * 3
    assert rated.log.records["value"].tolist() == [5, 3, 4]
    assert rated.raw_rating.tolist() == [5.0, 3.0, 4.0]


def test_header_names_match_case_insensitively_when_not_exact(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "USERID,MovieID,Rating,TimeStamp\n1,2,4,100\n")
    rated, _ = load_interactions(path)
    assert len(rated.log) == 1


def test_epoch_and_iso_timestamps(tmp_path: Path) -> None:
    moment = int(datetime(2024, 5, 1, 12, tzinfo=UTC).timestamp())
    path = write(
        tmp_path / "a.csv",
        "user_id,event_id,rating,timestamp\n"
        f"u,e1,5,{moment}\n"
        f"u,e2,5,{moment}.75\n"
        "u,e3,5,2024-05-01T12:00:00Z\n"
        "u,e4,5,2024-05-01T14:00:00+02:00\n"
        "u,e5,5,2024-05-01 12:00:00\n",
    )
    rated, warning = load_interactions(path)
    assert warning is None
    assert rated.log.records["time"].tolist() == [moment] * 5


def test_types_default_rating_and_search_rows_are_skipped(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        "user_id,event_id,type,rating,timestamp\n"
        "u,e1,view,4,1\n"  # a rating on a view is ignored
        "u,e1,save,,2\n"
        "u,e2,search,,3\n"
        "u,e1,booking,,4\n"
        "u,e1,booking_cancelled,,5\n"
        "u,e3,rating,2,6\n"
        "u,e4,dismiss,,7\n",
    )
    rated, warning = load_interactions(path)
    assert warning is None
    assert rated.log.records["type"].tolist() == [
        TYPE_CODES[name]
        for name in ("view", "save", "booking", "booking_cancelled", "rating", "dismiss")
    ]
    assert rated.log.records["value"].tolist() == [1, 1, 1, 1, 2, 1]
    assert np.isnan(rated.raw_rating[[0, 1, 2, 3, 5]]).all()
    assert rated.raw_rating[4] == 2.0
    assert "e2" not in rated.event_ids


def test_records_are_in_time_order_as_a_replay_would_apply_them(tmp_path: Path) -> None:
    path = write(
        tmp_path / "a.csv",
        "user_id,event_id,type,rating,timestamp\nu,e1,booking,,30\nu,e1,view,,10\nu,e1,save,,10\n",
    )
    rated, _ = load_interactions(path)
    assert rated.log.records["type"].tolist() == [TYPE_VIEW, TYPE_SAVE, TYPE_BOOKING]
    assert rated.log.records["time"].tolist() == [10, 10, 30]


def test_half_star_ratings_map_to_1_5_and_keep_their_raw_value(tmp_path: Path) -> None:
    stars = [0.5, 1.0, 1.5, 2.0, 2.5, 3.0, 3.5, 4.0, 4.5, 5.0]
    lines = "".join(f"u,m{i},{s},{i}\n" for i, s in enumerate(stars))
    rated, _ = load_interactions(
        write(tmp_path / "a.csv", "userId,movieId,rating,timestamp\n" + lines)
    )
    assert rated.log.records["value"].tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert rated.raw_rating.tolist() == stars


def test_a_1_to_10_scale_maps_linearly_and_1_to_5_integers_are_unchanged() -> None:
    assert rating_to_record_value(np.arange(1, 11), (1.0, 10.0)).tolist() == [
        1, 1, 2, 2, 3, 3, 4, 4, 5, 5,
    ]  # fmt: skip
    assert rating_to_record_value(np.arange(1, 6), (1.0, 5.0)).tolist() == [1, 2, 3, 4, 5]


def test_bad_rows_are_reported_by_line_number_and_skipped(tmp_path: Path) -> None:
    good = "".join(f"u{i},e{i},4,{i}\n" for i in range(300))
    path = write(
        tmp_path / "a.csv",
        "user_id,event_id,rating,timestamp\n"
        + good[:40]
        + "u,e,five,1\n"  # the file's line 2 + lines in good[:40]
        + good[40:]
        + "u,e,4,yesterday\n",
    )
    bad_line = 2 + good[:40].count("\n")
    rated, warning = load_interactions(path)
    assert len(rated.log) == 300
    assert warning is not None
    assert f"line {bad_line}:" in warning
    assert f"line {303}:" in warning
    assert "2 of 302 rows" in warning


def test_more_bad_rows_than_the_bad_fraction_stops_the_run(tmp_path: Path) -> None:
    lines = [f"u{i},e{i},4,{i}" for i in range(100)]
    for position in (3, 10, 20, 30, 40, 50, 60):
        lines[position] = f"u{position},e,,{position}"  # a rating row without a rating
    lines.append("too,few")
    path = write(tmp_path / "a.csv", "user_id,event_id,rating,timestamp\n" + "\n".join(lines))
    with pytest.raises(EvaluationInputError) as raised:
        load_interactions(path, max_bad_fraction=0.01)
    message = str(raised.value)
    assert "8 of 101 rows" in message
    assert "line 5: a rating row without a rating" in message  # data row 3 is on line 5
    assert "and 3 more" in message
    assert "--max-bad-fraction" in message
    rated, warning = load_interactions(path, max_bad_fraction=0.1)
    assert len(rated.log) == 93
    assert warning is not None


@pytest.mark.parametrize(
    ("row", "reason"),
    [
        ("u,e,4,-5", "outside"),
        ("u,e,4,1714564800000", "outside"),
        ("u,e,nan,1", "finite"),
        (",e,4,1", "empty"),
    ],
)
def test_each_kind_of_bad_row_is_named(tmp_path: Path, row: str, reason: str) -> None:
    path = write(tmp_path / "a.csv", f"user_id,event_id,rating,timestamp\n{row}\n")
    with pytest.raises(EvaluationInputError, match=reason):
        load_interactions(path)


def test_an_unknown_type_is_a_bad_row(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "user_id,event_id,type,timestamp\nu,e,like,1\n")
    with pytest.raises(EvaluationInputError, match="line 2: unknown type 'like'"):
        load_interactions(path)


def test_a_missing_column_is_named(tmp_path: Path) -> None:
    path = write(tmp_path / "a.csv", "user_id,rating,timestamp\nu,4,1\n")
    with pytest.raises(EvaluationInputError, match=r"missing column.*event"):
        load_interactions(path)


def test_a_given_split_shares_one_index_space_and_one_rating_scale(tmp_path: Path) -> None:
    train = write(tmp_path / "train.csv", "userId,movieId,rating,timestamp\n1,10,4,1\n2,20,5,2\n")
    test = write(tmp_path / "test.csv", "userId,movieId,rating,timestamp\n2,10,0.5,3\n3,30,3.5,4\n")
    train_log, test_log, warnings = load_train_test(train, test)
    assert warnings == []
    assert train_log.log.n_users == test_log.log.n_users == 3
    assert train_log.log.n_events == test_log.log.n_events == 3
    assert test_log.log.user.tolist() == [1, 2]
    assert test_log.log.records["event"].tolist() == [0, 2]
    # The half star in the test file puts both files on the 0.5..5 scale.
    assert train_log.log.records["value"].tolist() == [4, 5]
    assert test_log.log.records["value"].tolist() == [1, 4]


def test_100k_rows_load_well_under_5_seconds(movielens_like: Callable[..., Path]) -> None:
    path = movielens_like(n_ratings=100_000)
    started = time.perf_counter()
    rated, warning = load_interactions(path)
    elapsed = time.perf_counter() - started
    assert warning is None
    assert len(rated.log) == 100_000
    assert elapsed < 5.0
