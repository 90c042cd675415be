"""The synthetic event catalog: who plays, where, when, under what title, and its lifecycle.

Events recur: performers, organizers and series come back across the history, and each
event belongs to a scene (a sub-genre seen only in its tag and text). Each of them has a
planted latent vector; an event's latent vector mixes those of its scene, performers,
organizer and series. Lifecycle: announced (``published_at``) weeks before it starts,
on sale until it starts, then it happens; some are cancelled, popular ones sell out.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from itertools import count

import numpy as np
import numpy.typing as npt

from eventrec.schemas import Event, EventStatus, Price
from eventrec.synth.config import SynthConfig
from eventrec.synth.names import NameBook
from eventrec.synth.vocabulary import (
    CATEGORIES,
    CITIES,
    TEAM,
    TIME_WORDS,
    TITLE_TIME_WORDS,
    Scene,
)

DAY = 86_400
HOUR = 3_600
COLOMBO_TIME = timezone(timedelta(hours=5, minutes=30), "Asia/Colombo")
COLOMBO_OFFSET_HOURS = 5.5

CATEGORY_SHARES = np.array([0.20, 0.10, 0.10, 0.12, 0.10, 0.08, 0.08, 0.08, 0.14])
STATUS_NAMES = (EventStatus.SCHEDULED, EventStatus.CANCELLED, EventStatus.SOLD_OUT)
STATUS_SCHEDULED, STATUS_CANCELLED, STATUS_SOLD_OUT = 0, 1, 2

# Every tag of the platform, category by category: a scene's tag, then the general ones.
ALL_TAGS = tuple(dict.fromkeys(tag for c in CATEGORIES for tag in c.tags))
TAG_INDEX = {tag: index for index, tag in enumerate(ALL_TAGS)}
CATEGORY_TAGS = tuple(np.array([TAG_INDEX[t] for t in c.tags]) for c in CATEGORIES)

# Scenes of all categories, numbered in one sequence.
SCENES: tuple[tuple[int, Scene], ...] = tuple(
    (category, scene) for category, kind in enumerate(CATEGORIES) for scene in kind.scenes
)
SCENE_CATEGORY = np.array([category for category, _ in SCENES], dtype=np.int64)

LATENT_DIMENSIONS = 16
EVENTS_PER_PERFORMER = 5.0  # on average; famous ones play more often
EVENTS_PER_ORGANIZER = 75
EVENTS_PER_SERIES = 30
SERIES_SHARE = 0.35  # of events that are an edition of a series
SERIES_AT_HOME = 0.85  # of a series' editions in its home city
# Weights of an event's latent parts: scene, performers, organizer, series.
LATENT_WEIGHTS = (0.45, 0.6, 0.3, 0.5)

Int = npt.NDArray[np.int64]
Float = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EventTable:
    """The catalog as columns, one row per event (times in epoch seconds)."""

    event_ids: list[str]
    category: Int
    scene: Int  # index into SCENES
    city: Int
    venue: list[str]
    price: Float
    starts_at: Int
    ends_at: Int
    published_at: Int
    status: Int
    popularity: Float  # the planted "everyone likes it" factor
    tags: list[list[int]]
    titles: list[str]
    organizer: Int  # index into organizer_names
    performers: list[list[int]]  # indices into performer_names
    series: Int  # index into series_names, -1 for a one-off
    latent: Float  # (n_events, LATENT_DIMENSIONS), unit rows: the planted latent position
    performer_names: list[str]
    organizer_names: list[str]
    series_names: list[str]
    scene_vectors: Float  # (len(SCENES), LATENT_DIMENSIONS)
    performer_scene: Int
    performer_vectors: Float

    def __len__(self) -> int:
        return len(self.event_ids)


def weighted_choice(rng: np.random.Generator, shares: Float, size: int) -> Int:
    """Draw ``size`` indices with probabilities ``shares`` (normalised here)."""
    cumulative = np.cumsum(shares / shares.sum())
    cumulative[-1] = 1.0
    return np.searchsorted(cumulative, rng.random(size), side="right").astype(np.int64)


def unit_rows(matrix: Float) -> Float:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: Float = matrix / np.where(norms > 0, norms, 1.0)
    return result


def _feasible(scene: Scene, city: int) -> bool:
    return CITIES[city].has_kind(scene.venue_kinds)


@dataclass(frozen=True)
class _Cast:
    """The recurring entities of a platform and their planted latent vectors."""

    scene_vectors: Float
    performer_scene: Int
    performer_fame: Float
    performer_vectors: Float
    performer_names: list[str]
    organizer_categories: Float  # (n_organizers, n_categories) how much each works in each
    organizer_vectors: Float
    organizer_names: list[str]
    series_scene: Int
    series_city: Int
    series_organizer: Int
    series_weight: Float
    series_vectors: Float
    series_names: list[str]


def _cast(config: SynthConfig, rng: np.random.Generator) -> _Cast:
    names = NameBook(rng)
    n_scenes = len(SCENES)
    scene_vectors = unit_rows(rng.standard_normal((n_scenes, LATENT_DIMENSIONS)))

    performer_scene_list: list[int] = []
    for scene_index, (category, scene) in enumerate(SCENES):
        share = CATEGORY_SHARES[category] / len(CATEGORIES[category].scenes)
        per_event = (scene.n_performers[0] + scene.n_performers[1]) / 2
        count = max(2, round(config.n_events * share * per_event / EVENTS_PER_PERFORMER))
        performer_scene_list.extend([scene_index] * count)
    performer_scene = np.array(performer_scene_list, dtype=np.int64)
    n_performers = len(performer_scene)
    performer_vectors = unit_rows(
        0.6 * scene_vectors[performer_scene]
        + 0.8 * unit_rows(rng.standard_normal((n_performers, LATENT_DIMENSIONS)))
    )
    performer_names = [names.performer(SCENES[s][1].act) for s in performer_scene.tolist()]

    n_organizers = max(4, config.n_events // EVENTS_PER_ORGANIZER)
    organizer_categories = np.full((n_organizers, len(CATEGORIES)), 0.05)
    for organizer in range(n_organizers):
        specialties = rng.choice(len(CATEGORIES), size=2, replace=False, p=CATEGORY_SHARES)
        organizer_categories[organizer, specialties] = (1.0, 0.5)
    organizer_vectors = unit_rows(rng.standard_normal((n_organizers, LATENT_DIMENSIONS)))
    organizer_names = [names.organizer() for _ in range(n_organizers)]

    n_series = max(3, config.n_events // EVENTS_PER_SERIES)
    series_category = weighted_choice(rng, CATEGORY_SHARES, n_series)
    series_scene = np.empty(n_series, dtype=np.int64)
    series_city = np.empty(n_series, dtype=np.int64)
    series_organizer = np.empty(n_series, dtype=np.int64)
    city_shares = np.array([c.share for c in CITIES])
    for series in range(n_series):
        category = int(series_category[series])
        scenes = np.flatnonzero(category == SCENE_CATEGORY)
        chosen = int(scenes[rng.integers(len(scenes))])
        feasible = np.array([_feasible(SCENES[chosen][1], c) for c in range(len(CITIES))])
        series_scene[series] = chosen
        series_city[series] = weighted_choice(rng, city_shares * feasible, 1)[0]
        series_organizer[series] = weighted_choice(rng, organizer_categories[:, category], 1)[0]
    series_vectors = unit_rows(
        0.5 * scene_vectors[series_scene]
        + 0.85 * unit_rows(rng.standard_normal((n_series, LATENT_DIMENSIONS)))
    )
    series_names = [names.series(SCENES[s][1].title) for s in series_scene.tolist()]
    return _Cast(
        scene_vectors=scene_vectors,
        performer_scene=performer_scene,
        performer_fame=rng.lognormal(0.0, 0.6, n_performers),
        performer_vectors=performer_vectors,
        performer_names=performer_names,
        organizer_categories=organizer_categories,
        organizer_vectors=organizer_vectors,
        organizer_names=organizer_names,
        series_scene=series_scene,
        series_city=series_city,
        series_organizer=series_organizer,
        series_weight=rng.lognormal(0.0, 0.5, n_series),
        series_vectors=series_vectors,
        series_names=series_names,
    )


def _start_times(config: SynthConfig, rng: np.random.Generator) -> tuple[Int, Int]:
    """Start days (UTC midnight) and publication instants: new events arrive all along."""
    n, now = config.n_events, config.now_epoch
    past = rng.random(n) < config.past_event_share
    lead_days = np.clip(rng.lognormal(np.log(config.lead_days), 0.5, n), 7, 150)
    # Past events start at least a few days into the history, so they had time on sale;
    # upcoming ones have been announced already, so they start within their lead time.
    day_offset = np.where(
        past,
        -rng.uniform(3, config.history_days - 3, n),
        rng.uniform(0.2, np.minimum(config.horizon_days, lead_days), n),
    )
    start_day = (now + day_offset * DAY) // DAY * DAY
    published_at = (start_day - lead_days * DAY).astype(np.int64)
    fresh = (start_day > now) & (rng.random(n) < config.new_event_share)
    published_at = np.where(
        fresh, now - rng.uniform(2 * HOUR, 3 * DAY, n).astype(np.int64), published_at
    )
    return start_day.astype(np.int64), published_at


def generate_events(config: SynthConfig, rng: np.random.Generator) -> EventTable:
    n = config.n_events
    now = config.now_epoch
    cast = _cast(config, rng)
    start_day, published_at = _start_times(config, rng)
    city_shares = np.array([c.share for c in CITIES])

    in_series = rng.random(n) < SERIES_SHARE
    series = np.where(in_series, weighted_choice(rng, cast.series_weight, n), -1).astype(np.int64)
    category = weighted_choice(rng, CATEGORY_SHARES, n)
    city = weighted_choice(rng, city_shares, n)
    scene = np.empty(n, dtype=np.int64)
    organizer = np.empty(n, dtype=np.int64)
    performers: list[list[int]] = []
    venues: list[str] = []
    start_hour = np.empty(n)
    picks = rng.random((n, 6))
    away = rng.random(n) >= SERIES_AT_HOME
    for row in range(n):
        if series[row] >= 0:
            scene[row] = cast.series_scene[series[row]]
            category[row] = SCENE_CATEGORY[scene[row]]
            organizer[row] = cast.series_organizer[series[row]]
            feasible = [c for c in range(len(CITIES)) if _feasible(SCENES[scene[row]][1], c)]
            city[row] = (
                feasible[int(picks[row, 0] * len(feasible))]
                if away[row]
                else cast.series_city[series[row]]
            )
        else:
            options = [
                s
                for s in np.flatnonzero(category[row] == SCENE_CATEGORY).tolist()
                if _feasible(SCENES[s][1], int(city[row]))
            ]
            scene[row] = options[int(picks[row, 0] * len(options))]
            organizer[row] = weighted_choice(rng, cast.organizer_categories[:, category[row]], 1)[0]
        kind = SCENES[scene[row]][1]
        low, high = kind.n_performers
        pool = np.flatnonzero(cast.performer_scene == scene[row])
        count = min(int(low + picks[row, 1] * (high - low + 1)), len(pool))
        fame = cast.performer_fame[pool]
        chosen = rng.choice(pool, size=count, replace=False, p=fame / fame.sum())
        performers.append([int(p) for p in chosen])
        fitting = [v.name for v in CITIES[city[row]].venues if v.kind in kind.venue_kinds]
        venues.append(fitting[int(picks[row, 2] * len(fitting))])
        start_hour[row] = kind.hours[int(picks[row, 3] * len(kind.hours))]

    # Hours are Colombo time (UTC+05:30).
    starts_at = (start_day + (start_hour - COLOMBO_OFFSET_HOURS) * HOUR).astype(np.int64)
    low_hours = np.array([CATEGORIES[c].duration_hours[0] for c in category])
    high_hours = np.array([CATEGORIES[c].duration_hours[1] for c in category])
    ends_at = (
        starts_at + (rng.uniform(low_hours, high_hours) * 2).round().astype(np.int64) * HOUR // 2
    )
    # Nothing is announced in the future, and everything is on sale for two days at least.
    published_at = np.minimum(published_at, now - 2 * HOUR)
    published_at = np.minimum(published_at, starts_at - 2 * DAY) // 60 * 60

    median = np.array([CATEGORIES[c].median_price for c in category])
    spread = np.array([CATEGORIES[c].price_spread for c in category])
    free_share = np.array([CATEGORIES[c].free_share for c in category])
    price = np.maximum(np.round(median * np.exp(spread * rng.standard_normal(n)) / 50) * 50, 200)
    price = np.where(rng.random(n) < free_share, 0.0, price)

    fame = np.array([cast.performer_fame[p].mean() for p in performers])
    popularity = rng.lognormal(0.0, 1.4, n) * fame

    w_scene, w_performers, w_organizer, w_series = LATENT_WEIGHTS
    performer_mean = np.array([cast.performer_vectors[p].mean(axis=0) for p in performers])
    latent = unit_rows(
        w_scene * cast.scene_vectors[scene]
        + w_performers * performer_mean
        + w_organizer * cast.organizer_vectors[organizer]
        + w_series * np.where(series[:, None] >= 0, cast.series_vectors[series], 0.0)
    )

    status = np.full(n, STATUS_SCHEDULED, dtype=np.int64)
    cancelled = rng.random(n) < 0.03
    status[cancelled] = STATUS_CANCELLED
    # Popular upcoming events are the ones that sell out.
    upcoming = starts_at > now
    popular = popularity >= np.quantile(popularity, 0.9)
    status[upcoming & ~cancelled & popular & (rng.random(n) < 0.3)] = STATUS_SOLD_OUT

    tags: list[list[int]] = []
    for row in range(n):
        kind = CATEGORIES[category[row]]
        extras = [
            t for t, keep in zip(kind.extra_tags, picks[row, 4:6] < 0.4, strict=False) if keep
        ]
        tags.append([TAG_INDEX[SCENES[scene[row]][1].tag]] + [TAG_INDEX[t] for t in extras])

    titles = _titles(
        rng,
        category,
        scene,
        city,
        venues,
        start_hour,
        starts_at,
        published_at,
        series,
        [[cast.performer_names[p] for p in chosen] for chosen in performers],
        cast.series_names,
    )
    return EventTable(
        event_ids=[f"ev-{index + 1:05d}" for index in range(n)],
        category=category,
        scene=scene,
        city=city,
        venue=venues,
        price=price,
        starts_at=starts_at,
        ends_at=ends_at,
        published_at=published_at,
        status=status,
        popularity=popularity,
        tags=tags,
        titles=titles,
        organizer=organizer,
        performers=performers,
        series=series,
        latent=latent,
        performer_names=cast.performer_names,
        organizer_names=cast.organizer_names,
        series_names=cast.series_names,
        scene_vectors=cast.scene_vectors,
        performer_scene=cast.performer_scene,
        performer_vectors=cast.performer_vectors,
    )


def performer_phrase(scene: Scene, performers: list[str]) -> str:
    """How a title names the performers: two teams play each other, others appear together."""
    if scene.act == TEAM:
        return " vs ".join(performers)
    return " & ".join(performers[:2])


def time_words_for(hour: float) -> list[str]:
    """The time-of-day words a title may use for an event starting at local ``hour``."""
    return [w for w in TITLE_TIME_WORDS if TIME_WORDS[w][0] <= hour <= TIME_WORDS[w][1]]


def _titles(
    rng: np.random.Generator,
    category: Int,
    scene: Int,
    city: Int,
    venues: list[str],
    start_hour: Float,
    starts_at: Int,
    published_at: Int,
    series: Int,
    performer_names: list[list[str]],
    series_names: list[str],
) -> list[str]:
    """One title per event, unique among the events on sale at the same time as it."""
    n = len(category)
    # Editions of a series are numbered in the order they happen.
    edition = np.zeros(n, dtype=np.int64)
    for s in np.unique(series[series >= 0]).tolist():
        members = np.flatnonzero(series == s)
        edition[members[np.argsort(starts_at[members], kind="stable")]] = np.arange(
            1, len(members) + 1
        )
    on_sale: dict[str, list[tuple[int, int]]] = {}
    titles = [""] * n
    for row in np.argsort(published_at, kind="stable").tolist():
        kind = CATEGORIES[category[row]]
        place = SCENES[scene[row]][1]
        words = time_words_for(float(start_hour[row]))
        fields = {
            "performer": performer_phrase(place, performer_names[row]),
            "work": place.works[int(rng.integers(len(place.works)))],
            "scene": place.title,
            "city": CITIES[city[row]].name,
            "venue": venues[row],
            "time_word": words[int(rng.integers(len(words)))] if words else "",
            "series": series_names[series[row]] if series[row] >= 0 else "",
            "edition": f"Vol. {edition[row]}",
        }
        templates = list(kind.series_titles if series[row] >= 0 else place.titles or kind.titles)
        templates = [t for t in templates if words or "{time_word}" not in t]
        order = rng.permutation(len(templates)).tolist()
        candidates = [templates[i].format(**fields) for i in order]
        local = datetime.fromtimestamp(int(starts_at[row]), COLOMBO_TIME)
        # Then as a platform does it: the date, and a show number for a second show that day.
        dated = f"{candidates[0]}, {local.day} {local:%b}"
        candidates.append(dated)
        window = (int(published_at[row]), int(starts_at[row]))
        for title in _then_numbered(candidates, dated):
            taken = on_sale.setdefault(title, [])
            if all(window[1] <= other[0] or other[1] <= window[0] for other in taken):
                taken.append(window)
                titles[row] = title
                break
    return titles


def _then_numbered(candidates: list[str], dated: str) -> Iterator[str]:
    yield from candidates
    for number in count(2):
        yield f"{dated} ({number})"


def _colombo(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, COLOMBO_TIME)


def event_models(
    table: EventTable, total_bookings: Int, rating_sum: Int, rating_count: Int
) -> list[Event]:
    """The catalog as published on the ``events`` topic, with its state as of "now"."""
    events = []
    for row, event_id in enumerate(table.event_ids):
        kind = CATEGORIES[table.category[row]]
        scene = SCENES[table.scene[row]][1]
        city = CITIES[table.city[row]].name
        tag_names = [ALL_TAGS[tag] for tag in table.tags[row]]
        performers = [table.performer_names[p] for p in table.performers[row]]
        organizer = table.organizer_names[table.organizer[row]]
        series = table.series_names[table.series[row]] if table.series[row] >= 0 else None
        price = int(table.price[row])
        count = int(rating_count[row])
        cost = "Free entry" if price == 0 else f"Tickets from LKR {price:,}"
        cast = f"With {', '.join(performers)}. " if performers else ""
        events.append(
            Event(
                schema_version=1,
                event_id=event_id,
                title=table.titles[row],
                description=(
                    f"{table.titles[row]}: {scene.title.lower()} at "
                    f"{table.venue[row]}, {city}. {cast}Presented by {organizer}. "
                    f"{cost}. " + " ".join(f"#{tag}" for tag in tag_names)
                ),
                category=kind.name,
                tags=tag_names,
                venue=table.venue[row],
                city=city,
                price=Price(amount=price, currency="LKR"),
                starts_at=_colombo(int(table.starts_at[row])),
                ends_at=_colombo(int(table.ends_at[row])),
                status=STATUS_NAMES[table.status[row]],
                avg_rating=round(int(rating_sum[row]) / count, 2) if count else None,
                total_bookings=int(total_bookings[row]),
                published_at=_colombo(int(table.published_at[row])),
                organizer=organizer,
                performers=performers,
                series=series,
            )
        )
    return events
