"""The catalog as serving holds it: compact arrays to filter and score every upcoming event.

Pure numpy: built from the catalog's JSON documents and the current model's vectors,
rebuilt (off the request path) when either changes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt

CAST_FIELDS = ("organizer", "performers", "series")


@dataclass(frozen=True)
class Filters:
    """What a request narrows the candidates to; ``None`` means no restriction."""

    cities: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    min_price: float | None = None
    max_price: float | None = None
    starts_after: float | None = None
    starts_before: float | None = None
    exclude: frozenset[str] = frozenset()


@dataclass
class Catalog:
    """Every event of the catalog, position ``i`` in each array being the same event."""

    event_ids: list[str]
    documents: list[dict[str, Any]]
    starts_at: npt.NDArray[np.float64]
    price: npt.NDArray[np.float64]
    city: npt.NDArray[np.int32]
    category: npt.NDArray[np.int32]
    showable: npt.NDArray[np.bool_]
    city_names: list[str]
    category_names: list[str]
    position: dict[str, int] = field(default_factory=dict)
    city_code: dict[str, int] = field(default_factory=dict)
    category_code: dict[str, int] = field(default_factory=dict)

    _upcoming: npt.NDArray[np.bool_] = field(default_factory=lambda: np.zeros(0, dtype=bool))
    _upcoming_second: int = -1

    def __post_init__(self) -> None:
        self.position = {event_id: i for i, event_id in enumerate(self.event_ids)}
        self.city_code = {name.casefold(): i for i, name in enumerate(self.city_names)}
        self.category_code = {name.casefold(): i for i, name in enumerate(self.category_names)}

    def __len__(self) -> int:
        return len(self.event_ids)

    @classmethod
    def from_documents(cls, documents: Mapping[str, bytes | str]) -> Catalog:
        """Build from ``{event_id: Event JSON}`` as the store keeps it."""
        event_ids = sorted(documents)
        parsed = [json.loads(documents[event_id]) for event_id in event_ids]
        city_names = sorted({doc["city"] for doc in parsed})
        category_names = sorted({doc["category"] for doc in parsed})
        city_of = {name: i for i, name in enumerate(city_names)}
        category_of = {name: i for i, name in enumerate(category_names)}
        return cls(
            event_ids=event_ids,
            documents=parsed,
            starts_at=np.array(
                [_epoch(doc["starts_at"]) for doc in parsed], dtype=np.float64
            ).reshape(-1),
            price=np.array([float(doc["price"]["amount"]) for doc in parsed], dtype=np.float64),
            city=np.array([city_of[doc["city"]] for doc in parsed], dtype=np.int32),
            category=np.array([category_of[doc["category"]] for doc in parsed], dtype=np.int32),
            showable=np.array(
                [doc.get("status", "scheduled") == "scheduled" for doc in parsed], dtype=bool
            ),
            city_names=city_names,
            category_names=category_names,
        )

    def codes(self, names: Iterable[str], table: dict[str, int]) -> list[int]:
        return [table[n.casefold()] for n in names if n.casefold() in table]

    def eligible(self, filters: Filters, now: float) -> npt.NDArray[np.bool_]:
        """Events that may be shown: scheduled, not started, and inside every filter."""
        second = int(now)
        if self._upcoming_second != second:
            # Recomputed once a second: most requests share it (a copy is ~50x cheaper).
            self._upcoming = self.showable & (self.starts_at > float(second))
            self._upcoming_second = second
        mask = self._upcoming.copy()
        if filters.cities is not None:
            mask &= np.isin(self.city, self.codes(filters.cities, self.city_code))
        if filters.categories is not None:
            mask &= np.isin(self.category, self.codes(filters.categories, self.category_code))
        if filters.min_price is not None:
            mask &= self.price >= filters.min_price
        if filters.max_price is not None:
            mask &= self.price <= filters.max_price
        if filters.starts_after is not None:
            mask &= self.starts_at >= filters.starts_after
        if filters.starts_before is not None:
            mask &= self.starts_at <= filters.starts_before
        for event_id in filters.exclude:
            position = self.position.get(event_id)
            if position is not None:
                mask[position] = False
        return mask

    def item(self, position: int, score: float, reason: str) -> dict[str, Any]:
        doc = self.documents[position]
        item = {
            "event_id": self.event_ids[position],
            "score": round(float(score), 6),
            "title": doc["title"],
            "category": doc["category"],
            "city": doc["city"],
            "starts_at": doc["starts_at"],
            "price": doc["price"],
            "reason": reason,
        }
        # Who is on and who puts it on, for events whose producer says so.
        item.update({name: doc[name] for name in CAST_FIELDS if doc.get(name)})
        return item


def _epoch(value: str) -> float:
    return datetime.fromisoformat(value).timestamp()


SAMPLE_STRIDE = 97


def top_positions(
    scores: npt.NDArray[np.floating[Any]], mask: npt.NDArray[np.bool_], limit: int
) -> npt.NDArray[np.int64]:
    """Positions of the ``limit`` best-scoring eligible events, best first (ties: position)."""
    limit = min(limit, int(np.count_nonzero(mask)))
    if limit <= 0:
        return np.zeros(0, dtype=np.int64)
    # Ineligible events score -inf, so the best `limit` are all eligible (no gather needed).
    masked = np.where(mask, scores, -np.inf)
    candidates = np.arange(len(masked))
    if len(masked) > 8 * SAMPLE_STRIDE * limit:
        # A threshold from every 97th score: the `limit`-th best of the sample. At least
        # `limit` scores reach it, so the best `limit` are among those that do: exact,
        # and a few hundred candidates instead of a partition of the whole catalog.
        sample = masked[::SAMPLE_STRIDE]
        threshold = np.partition(sample, len(sample) - limit)[len(sample) - limit]
        candidates = np.flatnonzero(masked >= threshold)
    candidates, values = keep_best(candidates, masked[candidates], limit)
    order = np.lexsort((candidates, -values))[:limit]
    result: npt.NDArray[np.int64] = candidates[order].astype(np.int64)
    return result


def keep_best(
    positions: npt.NDArray[np.int64], values: npt.NDArray[Any], limit: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[Any]]:
    """The entries scoring at least the ``limit``-th best value, in their order.

    Everything tied with the ``limit``-th best stays, so a later sort by (score, position)
    can give ties to the lower position.
    """
    if len(values) <= limit:
        return positions, values
    kth = np.partition(values, len(values) - limit)[len(values) - limit]
    keep = values >= kth
    return positions[keep], values[keep]


def positions_of(catalog: Catalog, event_ids: Sequence[str]) -> list[int]:
    return [catalog.position[e] for e in event_ids if e in catalog.position]
