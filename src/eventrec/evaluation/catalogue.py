"""Event catalogue and user profile files for ``eventrec evaluate --split time``.

``--events FILE``: JSON lines in the ``events`` topic's format (what ``eventrec synth
--out`` writes), or a CSV with ``event_id`` (or the interaction loader's aliases) and any
of ``title, description, category, tags, venue, city, price, starts_at, published_at,
status``. CSV tags are separated by ``|``; times are epoch seconds or ISO 8601 (no zone
means UTC). ``--users FILE``: JSON lines in the ``users`` topic's format, or a CSV with
``user_id`` (or aliases), ``city`` and ``preferred_categories`` (``|``-separated).

Events the catalogue names that no interaction names get new event indices, after the
interactions' own: the catalogue on sale includes events nobody has touched.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from eventrec.evaluation.loader import EVENT_COLUMNS, USER_COLUMNS, EvaluationInputError
from eventrec.model.timecut import EventDates

__all__ = ["Catalogue", "load_events", "load_profiles"]

CSV_EVENT_FIELDS = (
    "title",
    "description",
    "category",
    "tags",
    "venue",
    "city",
    "price",
    "starts_at",
    "published_at",
    "status",
)
LIST_SEPARATOR = "|"


@dataclass(frozen=True)
class Catalogue:
    """Events by index: their documents (events-topic shape, None when unknown) and dates."""

    documents: list[dict[str, Any] | None]
    dates: EventDates


def _epoch(value: Any) -> float:
    if value is None or value == "":
        return float("nan")
    try:
        return float(value)
    except (TypeError, ValueError):
        pass
    moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _iso(value: Any) -> str | None:
    seconds = _epoch(value)
    if np.isnan(seconds):
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


def _is_jsonl(path: Path) -> bool:
    with open(path, encoding="utf-8-sig") as handle:
        for line in handle:
            if line.strip():
                return line.lstrip().startswith("{")
    return False


def _json_lines(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                document = json.loads(line)
            except json.JSONDecodeError as exc:
                raise EvaluationInputError(f"{path}: line {number} is not JSON ({exc})") from None
            if isinstance(document, dict):
                yield document


def _csv_rows(path: Path, id_columns: tuple[str, ...]) -> Iterator[tuple[str, dict[str, str]]]:
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = [name.strip() for name in reader.fieldnames or []]
        lowered = {name.lower(): name for name in header}
        id_column = next((lowered[n.lower()] for n in id_columns if n.lower() in lowered), None)
        if id_column is None:
            raise EvaluationInputError(f"{path}: no id column ({', '.join(id_columns)})")
        for row in reader:
            cleaned = {
                (key or "").strip().lower(): (value or "").strip() for key, value in row.items()
            }
            identifier = cleaned.get(id_column.lower(), "")
            if identifier:
                yield identifier, cleaned


def _csv_event(row: dict[str, str]) -> dict[str, Any]:
    document: dict[str, Any] = {
        name: row[name] for name in ("title", "description", "category", "venue", "city")
        if row.get(name)
    }  # fmt: skip
    if row.get("tags"):
        document["tags"] = [t.strip() for t in row["tags"].split(LIST_SEPARATOR) if t.strip()]
    if row.get("price"):
        document["price"] = {"amount": float(row["price"]), "currency": "XXX"}
    for name in ("starts_at", "published_at"):
        if row.get(name):
            document[name] = _iso(row[name])
    document["status"] = row.get("status") or "scheduled"
    return document


def load_events(path: str | Path, event_index: dict[str, int]) -> Catalogue:
    """The catalogue over ``event_index`` (extended with events only the file names)."""
    path = Path(path)
    documents: dict[int, dict[str, Any]] = {}
    try:
        if _is_jsonl(path):
            for document in _json_lines(path):
                event_id = str(document.get("event_id") or "")
                if event_id:
                    documents[event_index.setdefault(event_id, len(event_index))] = document
        else:
            for event_id, row in _csv_rows(path, EVENT_COLUMNS):
                documents[event_index.setdefault(event_id, len(event_index))] = _csv_event(row)
    except (ValueError, KeyError) as exc:
        raise EvaluationInputError(f"{path}: {exc}") from None
    n_events = len(event_index)
    listed: list[dict[str, Any] | None] = [documents.get(i) for i in range(n_events)]
    published = np.full(n_events, np.nan)
    starts = np.full(n_events, np.nan)
    cancelled = np.zeros(n_events, dtype=bool)
    for index, document in documents.items():
        published[index] = _epoch(document.get("published_at"))
        starts[index] = _epoch(document.get("starts_at"))
        cancelled[index] = document.get("status") == "cancelled"
    return Catalogue(listed, EventDates(published, starts, cancelled))


def load_profiles(path: str | Path, user_index: dict[str, int]) -> list[dict[str, Any] | None]:
    """Profiles of the users ``user_index`` knows (others are ignored), by user index."""
    path = Path(path)
    profiles: list[dict[str, Any] | None] = [None] * len(user_index)
    if _is_jsonl(path):
        rows: Iterator[tuple[str, dict[str, Any]]] = (
            (str(d.get("user_id") or ""), d) for d in _json_lines(path)
        )
    else:
        rows = (
            (
                user_id,
                {
                    "city": row.get("city") or None,
                    "preferred_categories": [
                        c.strip()
                        for c in row.get("preferred_categories", "").split(LIST_SEPARATOR)
                        if c.strip()
                    ],
                },
            )
            for user_id, row in _csv_rows(path, USER_COLUMNS)
        )
    for user_id, profile in rows:
        index = user_index.get(user_id)
        if index is not None:
            profiles[index] = profile
    return profiles
