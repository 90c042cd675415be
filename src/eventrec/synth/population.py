"""The synthetic users: planted tastes as columns, and the `UserProfile`s they fill in."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from eventrec.schemas import Budget, UserProfile
from eventrec.synth.catalog import (
    ALL_TAGS,
    CATEGORY_SHARES,
    CATEGORY_TAGS,
    LATENT_DIMENSIONS,
    SCENE_CATEGORY,
    EventTable,
    unit_rows,
    weighted_choice,
)
from eventrec.synth.config import SynthConfig
from eventrec.synth.vocabulary import (
    AGE_BANDS,
    AGE_CATEGORY_LEAN,
    AGE_SHARES,
    CATEGORIES,
    CITIES,
)

MAX_PREFERRED = 3
MAX_INTERESTS = 5
# Affinity of a user for their 1st, 2nd and 3rd preferred category, and for any other.
PREFERRED_AFFINITY = np.array([1.0, 0.6, 0.4])
OTHER_AFFINITY = 0.03
MAX_SCENES = 3
MAX_FAVOURITE_PERFORMERS = 3
# Of a user's liked scenes, the share drawn from their preferred categories (the rest: any).
SCENES_IN_PREFERRED = 0.5
# Older users spend a little more per ticket.
AGE_BUDGET = np.array([0.4, 0.7, 1.0, 1.3, 1.4, 1.3, 1.1])

Int = npt.NDArray[np.int64]
Float = npt.NDArray[np.float64]


@dataclass(frozen=True)
class UserTable:
    """The users as columns, one row per user."""

    user_ids: list[str]
    city: Int
    age_band: Int
    budget_max: Float
    preferred: Int  # (n_users, MAX_PREFERRED) category indices, -1 where unused
    n_preferred: Int
    affinity: Float  # (n_users, n_categories): the planted category tastes
    interests: list[list[int]]  # tag indices
    activity: Float  # relative number of interactions
    latent: Float  # (n_users, LATENT_DIMENSIONS), unit rows: the planted latent taste
    latent_share: float  # how much of the taste is latent rather than category
    scenes: list[list[int]]  # liked scenes (indices into SCENES)
    favourite_performers: list[list[int]]

    def __len__(self) -> int:
        return len(self.user_ids)


def _latent_tastes(
    rng: np.random.Generator, preferred: Int, n_preferred: Int, events: EventTable
) -> tuple[Float, list[list[int]], list[list[int]]]:
    """Liked scenes (half within the preferred categories), favourite performers among them."""
    n = len(preferred)
    n_scenes = len(SCENE_CATEGORY)
    counts = rng.integers(1, MAX_SCENES + 1, n)
    n_favourites = rng.integers(0, MAX_FAVOURITE_PERFORMERS + 1, n)
    from_preferred = rng.random((n, MAX_SCENES)) < SCENES_IN_PREFERRED
    picks = rng.random((n, MAX_SCENES + MAX_FAVOURITE_PERFORMERS))
    scene_picks = rng.random((n, MAX_SCENES))
    by_category = [np.flatnonzero(c == SCENE_CATEGORY) for c in range(len(CATEGORIES))]
    by_scene = [np.flatnonzero(events.performer_scene == s) for s in range(n_scenes)]
    noise = unit_rows(rng.standard_normal((n, LATENT_DIMENSIONS)))
    latent = np.empty((n, LATENT_DIMENSIONS))
    scenes: list[list[int]] = []
    favourites: list[list[int]] = []
    for row in range(n):
        liked: dict[int, None] = {}
        for slot in range(int(counts[row])):
            if from_preferred[row, slot]:
                category = preferred[row, int(picks[row, slot] * n_preferred[row])]
                pool = by_category[category]
                liked[int(pool[int(scene_picks[row, slot] * len(pool))])] = None
            else:
                liked[int(picks[row, slot] * n_scenes)] = None
        chosen = list(liked)
        performers: dict[int, None] = {}
        for slot in range(int(n_favourites[row])):
            pool = by_scene[chosen[slot % len(chosen)]]
            pick = picks[row, MAX_SCENES + slot]
            performers[int(pool[int(pick * len(pool))])] = None
        scenes.append(chosen)
        favourites.append(list(performers))
        latent[row] = (
            events.scene_vectors[chosen].sum(axis=0)
            + 0.8 * events.performer_vectors[list(performers)].sum(axis=0)
            + 0.5 * noise[row]
        )
    return unit_rows(latent), scenes, favourites


def generate_users(config: SynthConfig, events: EventTable, rng: np.random.Generator) -> UserTable:
    n = config.n_users
    n_categories = len(CATEGORIES)
    city = weighted_choice(rng, np.array([c.share for c in CITIES]), n)
    age_band = weighted_choice(rng, np.array(AGE_SHARES), n)

    # Gumbel top-k: weighted sampling of distinct categories for all users at once.
    lean = np.array(AGE_CATEGORY_LEAN)[age_band] * CATEGORY_SHARES
    keys = np.log(lean) + rng.gumbel(size=(n, n_categories))
    ranked = np.argsort(-keys, axis=1)[:, :MAX_PREFERRED]
    n_preferred = weighted_choice(rng, np.array([0.3, 0.45, 0.25]), n) + 1
    slots = np.arange(MAX_PREFERRED)
    preferred = np.where(slots < n_preferred[:, None], ranked, -1)

    affinity = np.full((n, n_categories), OTHER_AFFINITY)
    for slot in range(MAX_PREFERRED):
        used = preferred[:, slot] >= 0
        affinity[np.flatnonzero(used), preferred[used, slot]] = PREFERRED_AFFINITY[slot]

    budget_max = np.round(AGE_BUDGET[age_band] * rng.lognormal(np.log(5000), 0.6, n) / 500) * 500
    budget_max = np.maximum(budget_max, 1000.0)

    # Interests: tags of the preferred categories, mostly of the first one.
    interest_slot = np.minimum(
        (rng.random((n, MAX_INTERESTS)) ** 1.5 * n_preferred[:, None]).astype(np.int64),
        n_preferred[:, None] - 1,
    )
    interest_category = np.take_along_axis(preferred, interest_slot, axis=1)
    interest_pick = rng.random((n, MAX_INTERESTS))
    n_interests = rng.integers(2, MAX_INTERESTS + 1, n)
    interests: list[list[int]] = []
    for row in range(n):
        chosen: dict[int, None] = {}
        for slot in range(int(n_interests[row])):
            pool = CATEGORY_TAGS[interest_category[row, slot]]
            chosen[int(pool[int(interest_pick[row, slot] * len(pool))])] = None
        interests.append(list(chosen))

    latent, scenes, favourites = _latent_tastes(rng, preferred, n_preferred, events)
    return UserTable(
        user_ids=[f"u-{index + 1:06d}" for index in range(n)],
        city=city,
        age_band=age_band,
        budget_max=budget_max,
        preferred=preferred,
        n_preferred=n_preferred,
        affinity=affinity,
        interests=interests,
        activity=rng.lognormal(0.0, 1.0, n),
        latent=latent,
        latent_share=config.latent_share,
        scenes=scenes,
        favourite_performers=favourites,
    )


def profile_models(table: UserTable, rng: np.random.Generator) -> list[UserProfile]:
    """Profiles as users fill them in: most list their tastes, some skip parts of onboarding."""
    n = len(table)
    lists_categories = rng.random(n) < 0.85
    gives_budget = rng.random(n) < 0.9
    gives_age = rng.random(n) < 0.95
    profiles = []
    for row, user_id in enumerate(table.user_ids):
        categories = [CATEGORIES[c].name for c in table.preferred[row] if c >= 0]
        profiles.append(
            UserProfile(
                schema_version=1,
                user_id=user_id,
                age_band=AGE_BANDS[table.age_band[row]] if gives_age[row] else None,
                city=CITIES[table.city[row]].name,
                budget=(
                    Budget(min=0, max=int(table.budget_max[row]), currency="LKR")
                    if gives_budget[row]
                    else None
                ),
                preferred_categories=categories if lists_categories[row] else [],
                interests=[ALL_TAGS[tag] for tag in table.interests[row]],
            )
        )
    return profiles
