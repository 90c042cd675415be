"""Distance between cities from their centroids: a feature only when both are known.

Pure: the centroids are passed in (see :func:`eventrec.resources.city_centroids` for the
table shipped with eventrec). An unknown city gives only whether the two names agree.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

EARTH_RADIUS_KM = 6371.0

__all__ = ["CityCentroids", "CityRelation", "haversine_km"]


def haversine_km(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance in km between two ``(latitude, longitude)`` points in degrees."""
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, *b))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(h)))


@dataclass(frozen=True)
class CityRelation:
    """Where one city is from another: always ``same_city``; ``distance_km`` if both known."""

    same_city: bool
    distance_km: float | None


class CityCentroids:
    """City name (case-insensitive) → centroid, and the distances between them."""

    def __init__(self, centroids: Mapping[str, tuple[float, float]]) -> None:
        self._centroids = {name.strip().casefold(): point for name, point in centroids.items()}

    def __contains__(self, city: object) -> bool:
        return isinstance(city, str) and city.strip().casefold() in self._centroids

    def __len__(self) -> int:
        return len(self._centroids)

    def centroid(self, city: str) -> tuple[float, float] | None:
        """``(latitude, longitude)`` of ``city``, or ``None`` if it is not in the table."""
        return self._centroids.get(city.strip().casefold())

    def distance_km(self, a: str, b: str) -> float | None:
        """Distance between the centroids of ``a`` and ``b``; ``None`` if either is unknown."""
        first = self._centroids.get(a.strip().casefold())
        second = self._centroids.get(b.strip().casefold())
        if first is None or second is None:
            return None
        return haversine_km(first, second)

    def relation(self, a: str, b: str) -> CityRelation:
        return CityRelation(
            same_city=a.strip().casefold() == b.strip().casefold(),
            distance_km=self.distance_km(a, b),
        )
