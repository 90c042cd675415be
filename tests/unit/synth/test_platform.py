"""The synthetic platform: deterministic, valid on the wire, and a believable funnel."""

from __future__ import annotations

import csv
import time
from collections import Counter, defaultdict
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest

from eventrec.schemas import (
    Event,
    EventStatus,
    Interaction,
    UserProfile,
    decode_event,
    decode_interaction,
    decode_profile,
    encode,
)
from eventrec.synth.config import SynthConfig
from eventrec.synth.platform import SyntheticPlatform, generate
from eventrec.synth.vocabulary import CATEGORY_NAMES, CITY_NAMES

NOW = datetime(2026, 6, 1, 9, 30, tzinfo=UTC)
CONFIG = SynthConfig(n_users=1_000, n_events=250, n_interactions=25_000, seed=7, now=NOW)


@pytest.fixture(scope="module")
def platform() -> SyntheticPlatform:
    return generate(CONFIG)


@pytest.fixture(scope="module")
def interactions(platform: SyntheticPlatform) -> list[Interaction]:
    return [decode_interaction(key, value) for key, value in platform.interaction_messages()]


@pytest.fixture(scope="module")
def events(platform: SyntheticPlatform) -> dict[str, Event]:
    return {event.event_id: event for event in platform.events}


def _all_bytes(platform: SyntheticPlatform) -> list[tuple[bytes, bytes]]:
    return [
        *platform.event_messages(),
        *platform.user_messages(),
        *platform.interaction_messages(),
    ]


def test_same_seed_gives_identical_bytes(platform: SyntheticPlatform, tmp_path: Path) -> None:
    again = generate(CONFIG)
    assert _all_bytes(again) == _all_bytes(platform)
    platform.write_csv(tmp_path / "a.csv")
    again.write_csv(tmp_path / "b.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes()


def test_another_seed_gives_another_platform(platform: SyntheticPlatform) -> None:
    other = generate(
        SynthConfig(n_users=1_000, n_events=250, n_interactions=25_000, seed=8, now=NOW)
    )
    assert list(other.interaction_messages())[:100] != list(platform.interaction_messages())[:100]


def test_every_message_validates_with_its_key(platform: SyntheticPlatform) -> None:
    for key, value in platform.event_messages():
        assert decode_event(key, value) is not None
    for key, value in platform.user_messages():
        assert decode_profile(key, value) is not None
    count = 0
    for key, value in platform.interaction_messages():
        decode_interaction(key, value)
        count += 1
    assert count == CONFIG.n_interactions


def test_fast_interaction_bytes_equal_the_pydantic_encoding(platform: SyntheticPlatform) -> None:
    messages = list(platform.interaction_messages())
    rng = np.random.default_rng(0)
    # Every type, plus a random sample.
    rows = {int(np.flatnonzero(platform.interactions.kind == kind)[0]) for kind in range(7)}
    rows |= set(rng.integers(0, len(messages), 300).tolist())
    for row in sorted(rows):
        key, value = messages[row]
        model = platform.interaction(row)
        assert decode_interaction(key, value) == model
        assert value == encode(model)
        assert key == model.user_id.encode()


def test_interaction_ids_unique_and_times_ordered(
    interactions: list[Interaction],
) -> None:
    assert len({i.interaction_id for i in interactions}) == len(interactions)
    times = [i.occurred_at for i in interactions]
    assert times == sorted(times)
    assert all(t.tzinfo is not None and t < NOW for t in times)
    last: dict[str, datetime] = {}
    for interaction in interactions:
        previous = last.get(interaction.user_id)
        assert previous is None or interaction.occurred_at > previous
        last[interaction.user_id] = interaction.occurred_at


def test_funnel_narrows_from_views_to_bookings(interactions: list[Interaction]) -> None:
    kinds = Counter(i.type.value for i in interactions)
    assert kinds["view"] > kinds["save"] > kinds["booking"] > kinds["booking_cancelled"] > 0
    assert kinds["booking"] > kinds["rating"] > 0
    assert kinds["dismiss"] > 0
    assert kinds["search"] > 0
    assert 0.5 < kinds["view"] / len(interactions) < 0.95


def test_engagement_only_while_on_sale(
    interactions: list[Interaction], events: dict[str, Event]
) -> None:
    for interaction in interactions:
        if interaction.type.value in ("view", "save", "booking", "booking_cancelled", "dismiss"):
            assert interaction.event_id is not None
            event = events[interaction.event_id]
            assert event.published_at is not None
            assert event.published_at <= interaction.occurred_at < event.starts_at
        if interaction.type.value == "booking":
            assert interaction.quantity is not None
            assert 1 <= interaction.quantity <= 4
            assert interaction.booking_id is not None
        if interaction.type.value == "search":
            assert interaction.event_id is None
            assert interaction.query


def test_ratings_follow_a_kept_booking_of_a_past_event(
    interactions: list[Interaction], events: dict[str, Event]
) -> None:
    booked: set[tuple[str, str | None]] = set()
    cancelled: set[tuple[str, str | None]] = set()
    for interaction in interactions:
        pair = (interaction.user_id, interaction.event_id)
        if interaction.type.value == "booking":
            booked.add(pair)
        elif interaction.type.value == "booking_cancelled":
            cancelled.add(pair)
        elif interaction.type.value == "rating":
            assert pair in booked
            assert pair not in cancelled
            event = events[str(interaction.event_id)]
            assert event.ends_at is not None
            assert interaction.occurred_at >= event.ends_at


def test_cancellation_refers_to_an_earlier_booking_of_the_same_user_and_event(
    interactions: list[Interaction],
) -> None:
    bookings: dict[str, tuple[str, str | None, int | None]] = {}
    n_cancelled = 0
    for interaction in interactions:
        if interaction.type.value == "booking":
            assert interaction.booking_id not in bookings
            bookings[str(interaction.booking_id)] = (
                interaction.user_id,
                interaction.event_id,
                interaction.quantity,
            )
        elif interaction.type.value == "booking_cancelled":
            n_cancelled += 1
            assert bookings[str(interaction.booking_id)] == (
                interaction.user_id,
                interaction.event_id,
                interaction.quantity,
            )
    assert n_cancelled > 0


@pytest.fixture(scope="module")
def category_only() -> SyntheticPlatform:
    """The same platform with no latent taste: category, city and price decide."""
    return generate(replace(CONFIG, latent_share=0.0))


def test_with_no_latent_share_bookings_fall_in_planted_categories(
    category_only: SyntheticPlatform,
) -> None:
    platform = category_only
    interactions = list(platform.interaction_models())
    events = {event.event_id: event for event in platform.events}
    bookings = [i for i in interactions if i.type.value == "booking"]
    in_taste = sum(
        events[str(b.event_id)].category in platform.truth.user(b.user_id).preferred_categories
        for b in bookings
    )
    home = sum(
        events[str(b.event_id)].city == platform.truth.user(b.user_id).home_city for b in bookings
    )
    assert in_taste / len(bookings) > 0.8
    # Picking cities by their shares alone would put about 17% of bookings at home.
    assert home / len(bookings) > 0.4
    dismissed = [i for i in interactions if i.type.value == "dismiss"]
    assert all(
        events[str(d.event_id)].category not in platform.truth.user(d.user_id).preferred_categories
        for d in dismissed
    )


def _share_in_latent_and_category_tastes(platform: SyntheticPlatform) -> tuple[float, float]:
    """Of the bookings: share of a liked scene or favourite performer, share of a liked category."""
    users, events, table = platform.user_table, platform.event_table, platform.interactions
    booked = np.flatnonzero(table.kind == 2)
    latent = category = 0
    for user, event in zip(table.user[booked].tolist(), table.event[booked].tolist(), strict=True):
        liked = events.scene[event] in users.scenes[user] or bool(
            set(events.performers[event]) & set(users.favourite_performers[user])
        )
        latent += liked
        category += events.category[event] in users.preferred[user]
    return latent / len(booked), category / len(booked)


def test_latent_share_moves_bookings_from_categories_to_latent_tastes() -> None:
    small = SynthConfig(n_users=600, n_events=200, n_interactions=15_000, seed=3, now=NOW)
    shares = [
        _share_in_latent_and_category_tastes(generate(replace(small, latent_share=share)))
        for share in (0.0, 0.5, 1.0)
    ]
    latent, category = zip(*shares, strict=True)
    assert latent[0] < latent[1] < latent[2], shares
    assert category[0] > category[1] > category[2], shares
    assert category[0] > 0.8, shares
    assert latent[2] > 3 * latent[0], shares


def test_ratings_are_higher_inside_planted_tastes(category_only: SyntheticPlatform) -> None:
    platform = category_only
    interactions = list(platform.interaction_models())
    events = {event.event_id: event for event in platform.events}
    inside: list[int] = []
    outside: list[int] = []
    for rating in (i for i in interactions if i.type.value == "rating"):
        liked = platform.truth.user(rating.user_id).preferred_categories
        assert rating.rating is not None
        (inside if events[str(rating.event_id)].category in liked else outside).append(
            rating.rating
        )
    assert inside
    assert np.mean(inside) > 3.5
    if outside:
        assert np.mean(inside) > np.mean(outside)


def test_booked_events_rank_high_by_planted_propensity(
    platform: SyntheticPlatform, interactions: list[Interaction]
) -> None:
    index = {event_id: i for i, event_id in enumerate(platform.event_table.event_ids)}
    booked_by: dict[str, list[int]] = defaultdict(list)
    for interaction in interactions:
        if interaction.type.value == "booking":
            booked_by[interaction.user_id].append(index[str(interaction.event_id)])
    percentiles = []
    for user_id, booked in list(booked_by.items())[:200]:
        scores = platform.truth.propensity(user_id)
        percentiles.extend((scores[booked, None] > scores[None, :]).mean(axis=1).tolist())
    assert np.mean(percentiles) > 0.8


def test_favourites_are_upcoming_untouched_and_to_taste(category_only: SyntheticPlatform) -> None:
    platform = category_only
    events = {event.event_id: event for event in platform.events}
    matches = 0
    total = 0
    for profile in platform.users[:100]:
        planted = platform.truth.user(profile.user_id)
        favourites = platform.truth.favourite_events(profile.user_id, n=5)
        assert len(favourites) == 5
        touched = set(platform.truth.touched_events(profile.user_id))
        for event_id in favourites:
            event = events[event_id]
            assert event_id not in touched
            assert event.starts_at > NOW
            assert event.status == EventStatus.SCHEDULED
            matches += event.category in planted.preferred_categories
            total += 1
    # The rest are hugely popular events near home; by chance it would be about a quarter.
    assert matches / total > 0.6


def test_catalog_looks_like_a_sri_lankan_ticketing_platform(
    platform: SyntheticPlatform,
) -> None:
    events = platform.events
    assert {e.city for e in events} == set(CITY_NAMES)
    assert {e.category for e in events} == set(CATEGORY_NAMES)
    assert all(e.price.currency == "LKR" and e.schema_version == 1 for e in events)
    assert any(e.price.amount == 0 for e in events)
    assert {e.status for e in events} == set(EventStatus)
    assert any(e.starts_at < NOW for e in events)
    assert any(e.starts_at > NOW for e in events)
    published = [e.published_at for e in events if e.published_at is not None]
    assert len(published) == len(events)
    assert max(published) <= NOW
    assert any(p > NOW - timedelta(days=3) for p in published)  # new events, few interactions
    assert all(e.ends_at is not None and e.ends_at > e.starts_at for e in events)
    assert any(e.total_bookings > 0 for e in events)
    assert any(e.avg_rating for e in events)


def test_profiles_carry_planted_home_city_and_tastes(platform: SyntheticPlatform) -> None:
    profiles: list[UserProfile] = platform.users
    assert len(profiles) == CONFIG.n_users
    listed = 0
    for profile in profiles:
        planted = platform.truth.user(profile.user_id)
        assert profile.city == planted.home_city
        assert 1 <= len(planted.preferred_categories) <= 3
        assert profile.interests
        if profile.preferred_categories:
            listed += 1
            assert tuple(profile.preferred_categories) == planted.preferred_categories
    assert 0.7 < listed / len(profiles) < 1.0


def test_csv_has_the_evaluation_columns(platform: SyntheticPlatform, tmp_path: Path) -> None:
    path = platform.write_csv(tmp_path / "interactions.csv")
    with path.open(newline="") as source:
        rows = list(csv.DictReader(source))
    assert list(rows[0]) == ["user_id", "event_id", "type", "rating", "timestamp"]
    assert len(rows) == CONFIG.n_interactions
    for row, model in zip(rows[:2000], platform.interaction_models(), strict=False):
        assert row["user_id"] == model.user_id
        assert row["event_id"] == (model.event_id or "")
        assert row["type"] == model.type.value
        assert row["rating"] == (str(model.rating) if model.rating else "")
        assert int(row["timestamp"]) == int(model.occurred_at.timestamp())


def test_jsonl_files_hold_one_message_a_line(platform: SyntheticPlatform, tmp_path: Path) -> None:
    written = platform.write_jsonl(tmp_path)
    assert {path.name for path in written.values()} == {
        "events.jsonl",
        "users.jsonl",
        "interactions.jsonl",
    }
    lines = written["interactions"].read_bytes().splitlines()
    assert lines == [value for _, value in platform.interaction_messages()]
    assert len(written["events"].read_bytes().splitlines()) == len(platform.events)


def test_small_platform_generates_well_under_a_second() -> None:
    started = time.perf_counter()
    small = generate(SynthConfig(n_users=1_000, n_events=300, n_interactions=20_000, seed=1))
    sum(1 for _ in small.interaction_messages())
    assert time.perf_counter() - started < 1.0


def test_config_refuses_a_naive_now() -> None:
    with pytest.raises(ValueError, match="timezone"):
        SynthConfig(now=datetime(2026, 1, 1))
