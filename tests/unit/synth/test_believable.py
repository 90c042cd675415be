"""The synthetic catalogue reads like a real one: titles, times, tags, venues and lifecycle."""

from __future__ import annotations

import itertools
from collections import defaultdict

import numpy as np
import pytest

from eventrec.synth.catalog import (
    COLOMBO_OFFSET_HOURS,
    DAY,
    HOUR,
    SCENES,
    STATUS_CANCELLED,
    STATUS_SOLD_OUT,
    EventTable,
    generate_events,
)
from eventrec.synth.config import SynthConfig
from eventrec.synth.funnel import BOOKING, VIEW
from eventrec.synth.platform import generate
from eventrec.synth.vocabulary import (
    BEACH,
    CATEGORIES,
    CITIES,
    CITY_NAMES,
    CITY_PATTERN,
    TIME_WORD_PATTERN,
    TIME_WORDS,
)

# The demo's catalogue size, for two seeds: the catalogue alone takes well under a second.
SEEDS = (1, 2)


@pytest.fixture(scope="module", params=SEEDS)
def catalog(request: pytest.FixtureRequest) -> EventTable:
    config = SynthConfig(n_events=3_000, seed=request.param)
    return generate_events(config, np.random.default_rng(request.param))


def _local_hour(epoch: int) -> float:
    return ((epoch / HOUR + COLOMBO_OFFSET_HOURS) % 24 + 24) % 24


def test_no_title_names_a_city_other_than_the_events_own(catalog: EventTable) -> None:
    for row, title in enumerate(catalog.titles):
        own = CITIES[catalog.city[row]].name
        named = CITY_PATTERN.findall(title)
        assert set(named) <= {own}, (title, own)
        assert len(named) <= 1, title  # "Galle Galle Literary Festival" no more


def test_no_title_names_a_venue_of_another_city(catalog: EventTable) -> None:
    for row, title in enumerate(catalog.titles):
        for city in CITIES:
            if city.name == CITIES[catalog.city[row]].name:
                continue
            for venue in city.venue_names:
                assert venue not in title, (title, venue)


def test_titles_are_unique_among_events_on_sale_at_the_same_time(catalog: EventTable) -> None:
    windows: dict[str, list[tuple[int, int]]] = defaultdict(list)
    for row, title in enumerate(catalog.titles):
        windows[title].append((int(catalog.published_at[row]), int(catalog.starts_at[row])))
    for title, spans in windows.items():
        spans.sort()
        for (_, first_end), (second_start, _) in itertools.pairwise(spans):
            assert first_end <= second_start, title
    # And most titles are not reused at all, even across time.
    assert len(windows) > 0.8 * len(catalog)


def test_time_of_day_words_agree_with_the_start(catalog: EventTable) -> None:
    seen = 0
    for row, title in enumerate(catalog.titles):
        hour = _local_hour(int(catalog.starts_at[row]))
        for word in TIME_WORD_PATTERN.findall(title):
            low, high = TIME_WORDS[word]
            assert low <= hour <= high, (title, hour)
            seen += 1
    assert seen > 50  # the check is not vacuous


def test_start_hours_are_those_of_the_scene(catalog: EventTable) -> None:
    for row in range(len(catalog)):
        scene = SCENES[catalog.scene[row]][1]
        assert _local_hour(int(catalog.starts_at[row])) in scene.hours


def test_tags_come_from_the_category_vocabulary_and_name_the_scene(catalog: EventTable) -> None:
    from eventrec.synth.catalog import ALL_TAGS

    for row, tags in enumerate(catalog.tags):
        category = CATEGORIES[catalog.category[row]]
        names = [ALL_TAGS[tag] for tag in tags]
        assert set(names) <= set(category.tags), (catalog.titles[row], names)
        assert names[0] == SCENES[catalog.scene[row]][1].tag
        assert len(set(names)) == len(names)


def test_venues_belong_to_the_events_city_and_suit_its_scene(catalog: EventTable) -> None:
    for row, venue_name in enumerate(catalog.venue):
        city = CITIES[catalog.city[row]]
        venue = next((v for v in city.venues if v.name == venue_name), None)
        assert venue is not None, (venue_name, city.name)
        assert venue.kind in SCENES[catalog.scene[row]][1].venue_kinds


def test_beach_sports_only_on_a_beach_of_a_coastal_city(catalog: EventTable) -> None:
    inland = {c.name for c in CITIES if not c.has_kind((BEACH,))}
    assert inland == {"Kandy", "Ella", "Anuradhapura"}
    beachy = 0
    for row in range(len(catalog)):
        if SCENES[catalog.scene[row]][1].tag in ("beach-volleyball", "surfing"):
            beachy += 1
            assert CITIES[catalog.city[row]].name not in inland
            assert any(
                v.name == catalog.venue[row] and v.kind == BEACH
                for v in CITIES[catalog.city[row]].venues
            )
    assert beachy > 0


def test_performers_organizers_and_series_recur(catalog: EventTable) -> None:
    appearances = np.bincount(
        [p for chosen in catalog.performers for p in chosen],
        minlength=len(catalog.performer_names),
    )
    assert np.mean(appearances[appearances > 0]) >= 2.5
    assert (appearances >= 5).sum() >= 50
    assert np.bincount(catalog.organizer).max() >= 30
    in_series = catalog.series >= 0
    assert 0.25 < in_series.mean() < 0.45
    assert np.bincount(catalog.series[in_series]).min() >= 1
    # A series keeps its scene and organizer from one edition to the next.
    for series in np.unique(catalog.series[in_series]).tolist():
        editions = catalog.series == series
        assert len(set(catalog.scene[editions].tolist())) == 1
        assert len(set(catalog.organizer[editions].tolist())) == 1


def test_names_carry_no_city_and_no_time_of_day(catalog: EventTable) -> None:
    for name in [*catalog.performer_names, *catalog.organizer_names, *catalog.series_names]:
        assert not CITY_PATTERN.search(name), name
        assert not TIME_WORD_PATTERN.search(name), name
    assert len(set(catalog.performer_names)) == len(catalog.performer_names)


def test_events_are_announced_weeks_ahead_all_through_the_history(catalog: EventTable) -> None:
    config = SynthConfig(n_events=3_000)
    lead_days = (catalog.starts_at - catalog.published_at) / DAY
    assert lead_days.min() >= 2
    assert 20 < np.median(lead_days) < 60
    assert catalog.published_at.max() <= config.now_epoch
    # New events keep arriving: every month of the history announces some.
    history_start = config.now_epoch - config.history_days * DAY
    months = (catalog.published_at[catalog.published_at >= history_start] - history_start) // (
        30 * DAY
    )
    counts = np.bincount(months, minlength=config.history_days // 30)
    assert counts.min() > 0.5 * counts.mean(), counts
    assert (catalog.status == STATUS_CANCELLED).any()
    assert (catalog.status == STATUS_SOLD_OUT).any()
    assert not (catalog.starts_at[catalog.status == STATUS_SOLD_OUT] < config.now_epoch).any()


def test_bookings_crowd_into_the_last_days_on_sale() -> None:
    platform = generate(SynthConfig(n_users=800, n_events=250, n_interactions=20_000, seed=4))
    table, events = platform.interactions, platform.event_table
    # Past events only: their whole time on sale is inside the history.
    past = events.starts_at[table.event] < platform.config.now_epoch
    early_enough = events.published_at[table.event] > (
        platform.config.now_epoch - platform.config.history_days * DAY
    )
    chosen = past & early_enough & (table.event >= 0)
    days = (events.starts_at[table.event] - table.time) / DAY
    lead = (events.starts_at[table.event] - events.published_at[table.event]) / DAY
    booked = chosen & (table.kind == BOOKING)
    viewed = chosen & (table.kind == VIEW)
    assert np.mean(days[booked] <= 7) > 0.5
    assert np.median(days[booked]) < 0.25 * np.median(lead[booked])
    assert np.median(days[viewed]) > np.median(days[booked])


def test_city_names_are_the_package_datas() -> None:
    from eventrec.resources import city_centroids

    centroids = city_centroids()
    assert all(name in centroids for name in CITY_NAMES)
    assert len(centroids) == len(CITY_NAMES)
