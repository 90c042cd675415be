"""The catalogue and profile files of `eventrec evaluate --split time`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from eventrec.evaluation.catalogue import load_events, load_profiles


def test_a_csv_catalogue_extends_the_index_with_untouched_events(tmp_path: Path) -> None:
    path = tmp_path / "events.csv"
    path.write_text(
        "itemId,title,category,tags,city,price,starts_at,published_at,status\n"
        "e1,Jazz night,music,jazz|live,Galle,2500,2026-12-05T19:30:00+05:30,1700000000,\n"
        "e9,New show,theatre,,Kandy,,2026-12-24T18:00:00Z,,cancelled\n"
    )
    index = {"e0": 0, "e1": 1}
    catalogue = load_events(path, index)
    assert index == {"e0": 0, "e1": 1, "e9": 2}
    assert catalogue.documents[0] is None
    jazz = catalogue.documents[1]
    assert jazz is not None
    assert (jazz["tags"], jazz["price"]["amount"], jazz["city"]) == (
        ["jazz", "live"],
        2500.0,
        "Galle",
    )
    assert catalogue.dates.published_at[1] == 1_700_000_000
    assert np.isnan(catalogue.dates.published_at[2])
    assert catalogue.dates.starts_at[2] == 1_798_135_200
    np.testing.assert_array_equal(catalogue.dates.cancelled, [False, False, True])


def test_json_lines_profiles_of_known_users_only(tmp_path: Path) -> None:
    path = tmp_path / "users.jsonl"
    lines = [
        {"user_id": "u2", "city": "Kandy", "preferred_categories": ["music"]},
        {"user_id": "stranger", "city": "Colombo"},
    ]
    path.write_text("\n".join(json.dumps(line) for line in lines) + "\n")
    profiles = load_profiles(path, {"u1": 0, "u2": 1})
    assert profiles[0] is None
    assert profiles[1] == lines[0]
