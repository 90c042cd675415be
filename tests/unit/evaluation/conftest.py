"""A MovieLens-like ratings file with planted taste structure, for loader, speed and CLI tests."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest


def write_movielens_like(
    path: Path,
    n_ratings: int = 100_000,
    n_users: int = 943,
    n_movies: int = 1682,
    seed: int = 0,
) -> Path:
    """Write ``userId,movieId,rating,timestamp`` with half-star ratings, MovieLens style.

    Users and movies belong to a few taste groups; a user mostly rates popular movies of
    their own group and rates them higher, so a personalised model can beat popularity.
    """
    rng = np.random.default_rng(seed)
    n_groups = 8
    user_group = rng.integers(n_groups, size=n_users)
    movie_group = rng.integers(n_groups, size=n_movies)
    popularity = rng.pareto(1.2, size=n_movies) + 0.05
    activity = rng.lognormal(0.0, 1.0, size=n_users)
    cap = n_movies // 2
    per_user = np.minimum(
        cap, 5 + rng.multinomial(n_ratings - 5 * n_users, activity / activity.sum())
    )
    while per_user.sum() < n_ratings:
        # Users at the cap hand their surplus to the others, so the file has n_ratings rows.
        room = np.where(per_user < cap, activity, 0.0)
        extra = rng.multinomial(n_ratings - per_user.sum(), room / room.sum())
        per_user = np.minimum(cap, per_user + extra)
    rows: list[tuple[int, int, float, int]] = []
    for user in range(n_users):
        affinity = np.where(movie_group == user_group[user], 6.0, 1.0)
        chance = popularity * affinity
        movies = rng.choice(n_movies, size=per_user[user], replace=False, p=chance / chance.sum())
        liked = movie_group[movies] == user_group[user]
        stars = np.where(liked, 4.0, 2.5) + rng.normal(0, 0.8, size=len(movies))
        stars = np.clip(np.round(stars * 2) / 2, 0.5, 5.0)
        start = 874_724_710 + int(rng.integers(0, 20_000_000))
        times = start + np.sort(rng.integers(0, 5_000_000, size=len(movies)))
        rows.extend(
            zip(
                np.full(len(movies), user + 1).tolist(),
                (movies + 1).tolist(),
                stars.tolist(),
                times.tolist(),
                strict=True,
            )
        )
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["userId", "movieId", "rating", "timestamp"])
        writer.writerows(rows[:n_ratings])
    return path


@pytest.fixture
def movielens_like(tmp_path: Path) -> Callable[..., Path]:
    """``movielens_like(n_ratings=..., ...)`` writes a file under ``tmp_path`` and returns it."""

    def make(name: str = "ratings.csv", **options: int) -> Path:
        return write_movielens_like(tmp_path / name, **options)

    return make
