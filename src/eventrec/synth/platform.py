"""`generate(config)`: a whole synthetic platform, its messages, files and planted truth."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from eventrec.schemas import Event, Interaction, InteractionType, UserProfile, encode
from eventrec.synth.catalog import STATUS_SCHEDULED, EventTable, event_models, generate_events
from eventrec.synth.config import SynthConfig
from eventrec.synth.funnel import (
    BOOKING,
    BOOKING_CANCELLED,
    CITY_REACH,
    QUERIES,
    RATING,
    SEARCH,
    TYPE_NAMES,
    InteractionTable,
    generate_interactions,
    propensity,
)
from eventrec.synth.messages import InteractionEncoder
from eventrec.synth.population import UserTable, generate_users, profile_models
from eventrec.synth.truth import TRUTH_FILE, PlantedTastes
from eventrec.synth.vocabulary import CATEGORIES, CITIES

Message = tuple[bytes, bytes]
MESSAGE_BLOCK = 65_536


@dataclass(frozen=True)
class PlantedUser:
    """What the generator decided about a user, which recommendations should recover."""

    user_id: str
    home_city: str
    preferred_categories: tuple[str, ...]


class PlantedTruth:
    """The planted tastes of every user, and the upcoming events they would like most."""

    def __init__(
        self,
        config: SynthConfig,
        users: UserTable,
        events: EventTable,
        interactions: InteractionTable,
    ) -> None:
        self._config = config
        self._users = users
        self._events = events
        self._row = {user_id: row for row, user_id in enumerate(users.user_ids)}
        with_event = interactions.event >= 0
        # Sorted (user, event) codes: "has the user touched this event?" by binary search.
        self._touched = np.unique(
            interactions.user[with_event] * len(events) + interactions.event[with_event]
        )
        self._recommendable = (
            (events.starts_at > config.now_epoch)
            & (events.published_at <= config.now_epoch)
            & (events.status == STATUS_SCHEDULED)
        )

    def tastes(self) -> PlantedTastes:
        """The planted tastes as plain arrays: what `oracle_scores` ranks by."""
        users, events = self._users, self._events
        return PlantedTastes(
            user_ids=np.array(users.user_ids, dtype=np.str_),
            event_ids=np.array(events.event_ids, dtype=np.str_),
            latent_share=self._config.latent_share,
            booking_days=self._config.booking_days,
            user_category_affinity=users.affinity,
            user_latent=users.latent,
            user_city=users.city,
            user_budget=users.budget_max,
            event_category=events.category,
            event_latent=events.latent,
            event_city=events.city,
            event_price=events.price,
            event_popularity=events.popularity,
            event_starts_at=events.starts_at,
            event_published_at=events.published_at,
            city_reach=CITY_REACH,
        )

    def user(self, user_id: str) -> PlantedUser:
        row = self._row[user_id]
        return PlantedUser(
            user_id=user_id,
            home_city=CITIES[self._users.city[row]].name,
            preferred_categories=tuple(
                CATEGORIES[c].name for c in self._users.preferred[row] if c >= 0
            ),
        )

    def propensity(self, user_id: str) -> npt.NDArray[np.float64]:
        """The planted propensity of the user for every event, in catalog order."""
        scores: npt.NDArray[np.float64] = propensity(
            self._users, self._events, np.array([self._row[user_id]])
        )[0]
        return scores

    def touched_events(self, user_id: str) -> list[str]:
        """Events the user has any interaction with."""
        n_events = len(self._events)
        row = self._row[user_id]
        low, high = np.searchsorted(self._touched, [row * n_events, (row + 1) * n_events])
        return [self._events.event_ids[code % n_events] for code in self._touched[low:high]]

    def favourite_events(self, user_id: str, n: int = 10) -> list[str]:
        """Top ``n`` upcoming, bookable events by planted propensity the user has not touched."""
        scores = self.propensity(user_id)
        eligible = self._recommendable.copy()
        row = self._row[user_id]
        n_events = len(self._events)
        low, high = np.searchsorted(self._touched, [row * n_events, (row + 1) * n_events])
        eligible[self._touched[low:high] % n_events] = False
        candidates = np.flatnonzero(eligible)
        best = candidates[np.argsort(-scores[candidates], kind="stable")[:n]]
        return [self._events.event_ids[index] for index in best]


class SyntheticPlatform:
    """Events, users and interactions (in time order) of one generated platform."""

    def __init__(
        self,
        config: SynthConfig,
        event_table: EventTable,
        user_table: UserTable,
        interactions: InteractionTable,
        events: list[Event],
        users: list[UserProfile],
    ) -> None:
        self.config = config
        self.event_table = event_table
        self.user_table = user_table
        self.interactions = interactions
        self.events = events
        self.users = users
        self.truth = PlantedTruth(config, user_table, event_table, interactions)
        self._encoder = InteractionEncoder(
            interactions,
            user_table.user_ids,
            event_table.event_ids,
            interaction_prefix=f"syn{config.seed}-",
            booking_prefix=f"bk{config.seed}-",
        )

    def interaction(self, row: int) -> Interaction:
        """Row ``row`` of the interactions as a validated model (slow; for checks)."""
        table = self.interactions
        kind = int(table.kind[row])
        event = int(table.event[row])
        booking = kind in (BOOKING, BOOKING_CANCELLED)
        return Interaction(
            schema_version=1,
            interaction_id=self._encoder.interaction_id(row),
            user_id=self.user_table.user_ids[table.user[row]],
            type=InteractionType(TYPE_NAMES[kind]),
            event_id=self.event_table.event_ids[event] if event >= 0 else None,
            rating=int(table.rating[row]) if kind == RATING else None,
            query=QUERIES[table.query[row]] if kind == SEARCH else None,
            booking_id=self._encoder.booking_id(int(table.booking[row])) if booking else None,
            quantity=int(table.quantity[row]) if booking else None,
            occurred_at=datetime.fromtimestamp(int(table.time[row]), UTC),
        )

    def interaction_models(self) -> Iterator[Interaction]:
        for row in range(len(self.interactions)):
            yield self.interaction(row)

    def interaction_messages(self) -> Iterator[Message]:
        """``(key, value)`` of every interaction in time order; key is the user_id."""
        user = self.interactions.user
        keys = self._encoder.user_keys
        for start in range(0, len(self.interactions), MESSAGE_BLOCK):
            stop = min(start + MESSAGE_BLOCK, len(self.interactions))
            values = self._encoder.values(start, stop)
            yield from zip([keys[u] for u in user[start:stop].tolist()], values, strict=True)

    def event_messages(self) -> Iterator[Message]:
        for event in self.events:
            yield event.event_id.encode("utf-8"), encode(event)

    def user_messages(self) -> Iterator[Message]:
        for profile in self.users:
            yield profile.user_id.encode("utf-8"), encode(profile)

    def write_jsonl(self, directory: str | Path) -> dict[str, Path]:
        """``events.jsonl``, ``users.jsonl`` and ``interactions.jsonl``: one message a line."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        written = {}
        for name, messages in (
            ("events", self.event_messages()),
            ("users", self.user_messages()),
            ("interactions", self.interaction_messages()),
        ):
            path = directory / f"{name}.jsonl"
            with path.open("wb") as out:
                for _, value in messages:
                    out.write(value + b"\n")
            written[name] = path
        return written

    def write_truth(self, directory: str | Path) -> Path:
        """``truth.npz``: the planted tastes, for the evaluation's ``oracle`` (no pickle)."""
        return self.truth.tastes().save(Path(directory) / TRUTH_FILE)

    def write_csv(self, path: str | Path) -> Path:
        """Interactions as ``user_id,event_id,type,rating,timestamp`` (epoch seconds)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        table = self.interactions
        user_ids = self.user_table.user_ids
        event_ids = [*self.event_table.event_ids, ""]  # index -1: searches have no event
        ratings = ["", *map(str, range(1, 6))]
        with path.open("w", encoding="utf-8", newline="") as out:
            out.write("user_id,event_id,type,rating,timestamp\n")
            for start in range(0, len(table), MESSAGE_BLOCK):
                rows = slice(start, start + MESSAGE_BLOCK)
                out.writelines(
                    f"{user_ids[u]},{event_ids[e]},{TYPE_NAMES[k]},{ratings[r]},{t}\n"
                    for u, e, k, r, t in zip(
                        table.user[rows].tolist(),
                        table.event[rows].tolist(),
                        table.kind[rows].tolist(),
                        table.rating[rows].tolist(),
                        table.time[rows].tolist(),
                        strict=True,
                    )
                )
        return path


def _event_state(n_events: int, table: InteractionTable) -> tuple[npt.NDArray[np.int64], ...]:
    """Net tickets booked, sum and count of ratings per event, as of "now"."""
    booked = table.kind == BOOKING
    cancelled = table.kind == BOOKING_CANCELLED
    rated = table.kind == RATING
    tickets = np.bincount(table.event[booked], table.quantity[booked], n_events)
    refunded = np.bincount(table.event[cancelled], table.quantity[cancelled], n_events)
    rating_sum = np.bincount(table.event[rated], table.rating[rated], n_events)
    rating_count = np.bincount(table.event[rated], minlength=n_events)
    return (
        np.maximum(tickets - refunded, 0).astype(np.int64),
        rating_sum.astype(np.int64),
        rating_count.astype(np.int64),
    )


def generate(config: SynthConfig) -> SyntheticPlatform:
    """A deterministic platform: the same config gives the same events, users and bytes."""
    catalog_seed, users_seed, funnel_seed, profile_seed = np.random.SeedSequence(config.seed).spawn(
        4
    )
    event_table = generate_events(config, np.random.default_rng(catalog_seed))
    user_table = generate_users(config, event_table, np.random.default_rng(users_seed))
    interactions = generate_interactions(
        config, user_table, event_table, np.random.default_rng(funnel_seed)
    )
    events = event_models(event_table, *_event_state(len(event_table), interactions))
    users = profile_models(user_table, np.random.default_rng(profile_seed))
    return SyntheticPlatform(config, event_table, user_table, interactions, events, users)
