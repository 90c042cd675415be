"""City distances from centroids: known answers, and only a same-city flag for unknown cities."""

from __future__ import annotations

import pytest

from eventrec.model.geo import CityCentroids, haversine_km
from eventrec.resources import city_centroids


def test_haversine_known_answers() -> None:
    assert haversine_km((0.0, 0.0), (0.0, 0.0)) == 0.0
    # One degree of longitude on the equator: 2πR / 360.
    assert haversine_km((0.0, 0.0), (0.0, 1.0)) == pytest.approx(111.195, abs=0.01)
    assert haversine_km((0.0, 0.0), (0.0, 1.0)) == haversine_km((0.0, 1.0), (0.0, 0.0))
    assert haversine_km((90.0, 0.0), (-90.0, 0.0)) == pytest.approx(20015.1, abs=0.1)


def test_known_cities_have_a_distance_and_a_flag() -> None:
    centroids = CityCentroids({"Paris": (48.857, 2.352), "Lyon": (45.764, 4.836)})
    relation = centroids.relation("Paris", "lyon ")
    assert relation.same_city is False
    assert relation.distance_km == pytest.approx(392, abs=3)
    same = centroids.relation("PARIS", "paris")
    assert same.same_city is True
    assert same.distance_km == 0.0


def test_an_unknown_city_gives_only_the_same_city_flag() -> None:
    centroids = CityCentroids({"Paris": (48.857, 2.352)})
    assert centroids.relation("Paris", "Atlantis").distance_km is None
    assert centroids.relation("Paris", "Atlantis").same_city is False
    same_unknown = centroids.relation("Atlantis", "atlantis")
    assert same_unknown.same_city is True
    assert same_unknown.distance_km is None
    assert centroids.centroid("Atlantis") is None


def test_the_shipped_table_places_sri_lankan_cities() -> None:
    centroids = city_centroids()
    assert "Colombo" in centroids
    assert "colombo" in centroids
    # Colombo–Kandy is about 94 km as the crow flies; Colombo–Jaffna about 305 km.
    assert centroids.distance_km("Colombo", "Kandy") == pytest.approx(94, abs=5)
    assert centroids.distance_km("Colombo", "Jaffna") == pytest.approx(305, abs=10)
