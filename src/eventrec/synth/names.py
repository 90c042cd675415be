"""Names of the people and brands that recur across events: performers, organizers, series.

Every name is free of city names and time-of-day words, so a title built from it names
no place but the event's own and says nothing about the hour that could contradict it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import product

import numpy as np

from eventrec.synth.vocabulary import (
    ARTIST,
    ATHLETE,
    BAND,
    CHEF,
    COMEDIAN,
    DJ,
    INSTRUCTOR,
    SINGER,
    SPEAKER,
    TEAM,
    TROUPE,
)

FIRST_NAMES = (
    "Kasun", "Nadeesha", "Tharindu", "Dilani", "Ruwan", "Ishara", "Kavinda", "Sachini",
    "Lahiru", "Nirosha", "Arjun", "Priya", "Suren", "Thilini", "Dinesh", "Amaya", "Roshan",
    "Shanika", "Pradeep", "Menaka", "Vishnu", "Kavitha", "Janaka", "Hasini", "Chamara",
    "Anushka", "Dilshan", "Yasodha", "Mohan", "Fathima", "Imran", "Shalini",
)  # fmt: skip
LAST_NAMES = (
    "Perera", "Fernando", "Silva", "Jayasuriya", "Wickramasinghe", "Bandara", "Dissanayake",
    "Gunawardena", "Herath", "Karunaratne", "Mendis", "Rajan", "Sivakumar", "Nadarajah",
    "Weerasinghe", "Ekanayake", "Abeysekera", "Ratnayake", "Liyanage", "Rahman", "De Mel",
    "Wijesinghe", "Thurairajah", "Kumarasinghe",
)  # fmt: skip
WORDS = (
    "Coral", "Monsoon", "Velvet", "Cinnamon", "Copper", "Jade", "Saffron", "Indigo", "Lotus",
    "Amber", "Silver", "Paper", "Lagoon", "Peacock", "Banyan", "Kingfisher", "Sapphire",
    "Moonstone", "Emerald", "Tusker", "Frangipani", "Cobalt", "Island", "Palmyrah",
)  # fmt: skip
BAND_NOUNS = (
    "Tide", "Drifters", "Echoes", "Lanterns", "Ravens", "Kites", "Waves", "Owls", "Pilots",
    "Rhythm", "Frequency", "Collective", "Strings", "Groove",
)  # fmt: skip
TEAM_PREFIXES = (
    "Royal", "Western", "Eastern", "Southern", "Northern", "Island", "Capital", "Coastal",
    "Highland", "United",
)  # fmt: skip
TEAM_NOUNS = (
    "Lions", "Tuskers", "Leopards", "Peacocks", "Sharks", "Cobras", "Falcons", "Warriors",
    "Mariners", "Hornets", "Panthers", "Stallions",
)  # fmt: skip
TROUPE_NOUNS = ("Players", "Stage Company", "Theatre Guild", "Repertory")
ORGANIZER_NOUNS = (
    "Live", "Events", "Promotions", "Entertainment", "Productions", "Presents", "Arts Trust",
)  # fmt: skip
SERIES_PATTERNS = (
    "{word} {scene} Sessions",
    "The {word} {scene} Club",
    "{scene} {word} Series",
    "{word} {scene} Weekender",
)


def _person(first: str, last: str) -> str:
    return f"{first} {last}"


_PATTERNS: dict[str, tuple[Callable[[str, str], str], tuple[str, ...], tuple[str, ...]]] = {
    SINGER: (_person, FIRST_NAMES, LAST_NAMES),
    COMEDIAN: (_person, FIRST_NAMES, LAST_NAMES),
    ARTIST: (_person, FIRST_NAMES, LAST_NAMES),
    ATHLETE: (_person, FIRST_NAMES, LAST_NAMES),
    INSTRUCTOR: (_person, FIRST_NAMES, LAST_NAMES),
    SPEAKER: (lambda first, last: f"Dr. {first} {last}", FIRST_NAMES, LAST_NAMES),
    CHEF: (lambda first, last: f"Chef {first} {last}", FIRST_NAMES, LAST_NAMES),
    DJ: (lambda first, word: f"DJ {word} {first}", FIRST_NAMES, WORDS),
    BAND: (lambda word, noun: f"The {word} {noun}", WORDS, BAND_NOUNS),
    TEAM: (lambda prefix, noun: f"{prefix} {noun}", TEAM_PREFIXES, TEAM_NOUNS),
    TROUPE: (lambda last, noun: f"{last} {noun}", LAST_NAMES, TROUPE_NOUNS),
}


class NameBook:
    """Hands out names never given before, in a seeded random order, per kind of act."""

    def __init__(self, rng: np.random.Generator) -> None:
        self._rng = rng
        self._given: set[str] = set()
        self._pools: dict[str, Iterator[str]] = {}

    def _draw(self, key: str, combos: list[str]) -> str:
        pool = self._pools.get(key)
        if pool is None:
            pool = self._pools[key] = self._endless(combos)
        for name in pool:
            if name not in self._given:
                self._given.add(name)
                return name
        raise AssertionError("an endless pool ended")  # pragma: no cover

    def _endless(self, combos: list[str]) -> Iterator[str]:
        order = self._rng.permutation(len(combos)).tolist()
        yield from (combos[i] for i in order)
        # Past the combinations, the same names with a Roman numeral (bands, teams: "II").
        for numeral in ("II", "III", "IV", "V", "VI", "VII", "VIII", "IX", "X"):
            yield from (f"{combos[i]} {numeral}" for i in order)
        count = 11
        while True:
            yield from (f"{combos[i]} {count}" for i in order)
            count += 1

    def performer(self, act: str) -> str:
        make, first, second = _PATTERNS[act]
        return self._draw(act, [make(a, b) for a, b in product(first, second)])

    def organizer(self) -> str:
        return self._draw(
            "organizer", [f"{word} {noun}" for word, noun in product(WORDS, ORGANIZER_NOUNS)]
        )

    def series(self, scene_title: str) -> str:
        return self._draw(
            f"series:{scene_title}",
            [
                pattern.format(word=word, scene=scene_title)
                for pattern, word in product(SERIES_PATTERNS, WORDS)
            ],
        )
