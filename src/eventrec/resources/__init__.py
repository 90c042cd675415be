"""Package data: Kafka's build files, and the table of city centroids."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources

from eventrec.model.geo import CityCentroids


@cache
def city_centroids() -> CityCentroids:
    """The centroids of the cities eventrec knows (``resources/cities.json``)."""
    table = json.loads(resources.files(__name__).joinpath("cities.json").read_text("utf-8"))
    return CityCentroids(
        {
            city["name"]: (float(city["latitude"]), float(city["longitude"]))
            for city in table["cities"]
        }
    )
