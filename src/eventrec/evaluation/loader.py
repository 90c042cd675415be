"""Interaction CSV files (a platform export, MovieLens, ...) as logs for offline evaluation.

Columns are matched by name, so any order and any extra columns work:

=========  ================================================================================
column     accepted names (exact, else case-insensitive)
=========  ================================================================================
user       ``user_id``, ``userId``, ``user``
event      ``event_id``, ``item_id``, ``itemId``, ``movieId``, ``event``, ``item``
rating     ``rating``: any number; empty for the types that carry none
timestamp  ``timestamp``: epoch seconds or ISO 8601 (no zone means UTC)
type       ``type`` (optional; missing or empty means ``rating``): view, save, booking,
           booking_cancelled, rating, dismiss; ``search`` rows are skipped
=========  ================================================================================

Rating scales. A record holds a rating as an integer 1..5, so other scales are mapped
linearly: the scale is ``[min(lowest rating, 1), max(highest rating, 5)]`` over every file
of the run, mapped onto ``[1, 5]`` and rounded half up. Integer 1..5 data is unchanged;
MovieLens half stars (0.5..5) map in pairs: 0.5, 1 -> 1; 1.5, 2 -> 2; ... 4.5, 5 -> 5;
a 1..10 scale likewise: 1, 2 -> 1; 3, 4 -> 2; ... 9, 10 -> 5. The raw value is kept beside
the log, so the relevance threshold and RMSE use the original scale. A rating on a row of
another type is ignored.

This reader does not go through the Kafka wire schemas: it is for files, and it reports
malformed rows by line number instead of dead-lettering them.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from eventrec.errors import EventrecError
from eventrec.model.records import TYPE_CODES, TYPE_RATING, InteractionLog

__all__ = [
    "EVENT_COLUMNS",
    "USER_COLUMNS",
    "EvaluationInputError",
    "InteractionFile",
    "RatedLog",
    "load_interactions",
    "load_train_test",
    "rating_scale",
    "rating_to_record_value",
    "read_interactions_csv",
]

USER_COLUMNS = ("user_id", "userId", "user")
EVENT_COLUMNS = ("event_id", "item_id", "itemId", "movieId", "event", "item")
SKIPPED_TYPES = frozenset({"search"})
MAX_TIME = 2**32 - 1  # records store time as uint32 seconds
BAD_LINES_SHOWN = 5


class EvaluationInputError(EventrecError):
    """An input file of ``eventrec evaluate`` cannot be used; the message says why."""


@dataclass
class InteractionFile:
    """One parsed CSV file: aligned columns over shared user and event index maps."""

    path: str
    user: np.ndarray  # int32 user index
    event: np.ndarray  # int32 event index
    kind: np.ndarray  # uint8 TYPE_* code
    rating: np.ndarray  # float64 raw rating, NaN for the types without one
    time: np.ndarray  # int64 epoch seconds
    data_rows: int  # non-blank rows after the header
    skipped_rows: int  # search rows
    bad_lines: list[tuple[int, str]] = field(default_factory=list)  # (line number, reason)


@dataclass(frozen=True)
class RatedLog:
    """An :class:`InteractionLog` with each record's raw rating on the file's own scale.

    ``raw_rating[i]`` belongs to ``log.records[i]`` and is NaN unless it is a rating.
    ``user_ids`` and ``event_ids`` map indices back to the file's ids.
    """

    log: InteractionLog
    raw_rating: np.ndarray
    user_ids: Sequence[str] = ()
    event_ids: Sequence[str] = ()

    def subset(self, mask: np.ndarray) -> RatedLog:
        """The records where ``mask`` is true, keeping order, index spaces and id maps."""
        return RatedLog(self.log.subset(mask), self.raw_rating[mask], self.user_ids, self.event_ids)


def _find_column(header: list[str], names: Sequence[str]) -> int | None:
    for name in names:
        if name in header:
            return header.index(name)
    lowered = [column.lower() for column in header]
    for name in names:
        if name.lower() in lowered:
            return lowered.index(name.lower())
    return None


def _parse_time(text: str) -> int:
    try:
        seconds = float(text)
    except ValueError:
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"timestamp {text!r} is neither epoch seconds nor ISO 8601") from None
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        seconds = moment.timestamp()
    if not math.isfinite(seconds) or not 0 <= seconds <= MAX_TIME:
        raise ValueError(f"timestamp {text!r} is outside 1970..2106 in epoch seconds")
    return int(seconds)


def read_interactions_csv(
    path: str | Path,
    *,
    user_index: dict[str, int] | None = None,
    event_index: dict[str, int] | None = None,
) -> InteractionFile:
    """Parse an interaction CSV, assigning indices in ``user_index`` / ``event_index``.

    Pass the same index maps for files that share ids (a train and a test file). Rows that
    cannot be used are collected in ``bad_lines``; a missing required column raises
    :class:`EvaluationInputError`.
    """
    users = {} if user_index is None else user_index
    events = {} if event_index is None else event_index
    user_column: list[int] = []
    event_column: list[int] = []
    kind_column: list[int] = []
    rating_column: list[float] = []
    time_column: list[int] = []
    bad_lines: list[tuple[int, str]] = []
    data_rows = skipped_rows = 0
    type_codes = dict(TYPE_CODES)
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        if not header:
            raise EvaluationInputError(f"{path}: empty file, expected a header row")
        user_at = _find_column(header, USER_COLUMNS)
        event_at = _find_column(header, EVENT_COLUMNS)
        rating_at = _find_column(header, ("rating",))
        time_at = _find_column(header, ("timestamp",))
        type_at = _find_column(header, ("type",))
        missing = [
            name
            for name, position in (
                ("user (" + ", ".join(USER_COLUMNS) + ")", user_at),
                ("event (" + ", ".join(EVENT_COLUMNS) + ")", event_at),
                ("timestamp", time_at),
            )
            if position is None
        ]
        if rating_at is None and type_at is None:
            missing.append("rating (or a type column without ratings)")
        if missing:
            raise EvaluationInputError(
                f"{path}: missing column(s) {'; '.join(missing)} in header {header}"
            )
        assert user_at is not None
        assert event_at is not None
        assert time_at is not None
        width = len(header)
        for row in reader:
            if not row or (len(row) == 1 and not row[0].strip()):
                continue
            data_rows += 1
            try:
                if len(row) != width:
                    raise ValueError(f"{len(row)} fields, the header has {width}")
                kind_name = (row[type_at].strip() if type_at is not None else "") or "rating"
                if kind_name in SKIPPED_TYPES:
                    skipped_rows += 1
                    continue
                kind = type_codes.get(kind_name)
                if kind is None:
                    raise ValueError(f"unknown type {kind_name!r}")
                user_id = row[user_at].strip()
                event_id = row[event_at].strip()
                if not user_id or not event_id:
                    raise ValueError("empty user or event id")
                rating = math.nan
                if kind == TYPE_RATING:
                    rating_text = row[rating_at].strip() if rating_at is not None else ""
                    if not rating_text:
                        raise ValueError("a rating row without a rating")
                    rating = float(rating_text)
                    if not math.isfinite(rating):
                        raise ValueError(f"rating {rating_text!r} is not a finite number")
                time = _parse_time(row[time_at].strip())
            except ValueError as exc:
                bad_lines.append((reader.line_num, str(exc)))
                continue
            user_column.append(users.setdefault(user_id, len(users)))
            event_column.append(events.setdefault(event_id, len(events)))
            kind_column.append(kind)
            rating_column.append(rating)
            time_column.append(time)
    return InteractionFile(
        path=str(path),
        user=np.array(user_column, dtype=np.int32),
        event=np.array(event_column, dtype=np.int32),
        kind=np.array(kind_column, dtype=np.uint8),
        rating=np.array(rating_column, dtype=np.float64),
        time=np.array(time_column, dtype=np.int64),
        data_rows=data_rows,
        skipped_rows=skipped_rows,
        bad_lines=bad_lines,
    )


def check_bad_lines(parsed: InteractionFile, max_bad_fraction: float) -> str | None:
    """Raise if too many rows are bad; else a warning naming the bad lines (None if none)."""
    if not parsed.bad_lines:
        return None
    shown = "; ".join(
        f"line {line}: {reason}" for line, reason in parsed.bad_lines[:BAD_LINES_SHOWN]
    )
    more = len(parsed.bad_lines) - BAD_LINES_SHOWN
    message = (
        f"{parsed.path}: {len(parsed.bad_lines)} of {parsed.data_rows} rows are malformed "
        f"({shown}{f'; and {more} more' if more > 0 else ''})"
    )
    if len(parsed.bad_lines) > max_bad_fraction * parsed.data_rows:
        raise EvaluationInputError(f"{message}: more than --max-bad-fraction {max_bad_fraction}")
    return message + ": skipped"


def rating_scale(*ratings: np.ndarray) -> tuple[float, float]:
    """The rating scale of a run: ``[min(lowest, 1), max(highest, 5)]`` over all ratings."""
    values = np.concatenate([np.zeros(0), *(r[~np.isnan(r)] for r in ratings)])
    if not len(values):
        return 1.0, 5.0
    return min(float(values.min()), 1.0), max(float(values.max()), 5.0)


def rating_to_record_value(raw: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    """Raw ratings mapped linearly from ``scale`` onto the record's 1..5, rounded half up."""
    low, high = scale
    stretched = 1.0 + (np.asarray(raw, dtype=np.float64) - low) * 4.0 / (high - low)
    # floor(x + 0.5) rounds half up; np.round would send 2.5 to 2.
    return np.clip(np.floor(stretched + 0.5), 1, 5).astype(np.uint8)


def _to_rated_log(
    parsed: InteractionFile,
    scale: tuple[float, float],
    user_ids: Sequence[str],
    event_ids: Sequence[str],
) -> RatedLog:
    # A stable sort by time puts each user's records in the order a Kafka replay applies them.
    order = np.argsort(parsed.time, kind="stable")
    kind = parsed.kind[order]
    raw = parsed.rating[order]
    value = np.ones(len(order), dtype=np.uint8)
    is_rating = kind == TYPE_RATING
    value[is_rating] = rating_to_record_value(raw[is_rating], scale)
    log = InteractionLog.from_columns(
        parsed.user[order],
        parsed.event[order],
        kind,
        value,
        parsed.time[order],
        n_users=len(user_ids),
        n_events=len(event_ids),
    )
    return RatedLog(log, raw, user_ids, event_ids)


def load_interactions(
    path: str | Path, *, max_bad_fraction: float = 0.01
) -> tuple[RatedLog, str | None]:
    """One interaction file as a log, and the bad-row warning (None when every row parsed)."""
    users: dict[str, int] = {}
    events: dict[str, int] = {}
    parsed = read_interactions_csv(path, user_index=users, event_index=events)
    warning = check_bad_lines(parsed, max_bad_fraction)
    scale = rating_scale(parsed.rating)
    return _to_rated_log(parsed, scale, list(users), list(events)), warning


def load_train_test(
    train_path: str | Path, test_path: str | Path, *, max_bad_fraction: float = 0.01
) -> tuple[RatedLog, RatedLog, list[str]]:
    """A given split: both files over one index space and one rating scale, and warnings."""
    users: dict[str, int] = {}
    events: dict[str, int] = {}
    parsed = [
        read_interactions_csv(path, user_index=users, event_index=events)
        for path in (train_path, test_path)
    ]
    warnings = [w for w in (check_bad_lines(p, max_bad_fraction) for p in parsed) if w]
    scale = rating_scale(*(p.rating for p in parsed))
    user_ids, event_ids = list(users), list(events)
    train, test = (_to_rated_log(p, scale, user_ids, event_ids) for p in parsed)
    return train, test, warnings
