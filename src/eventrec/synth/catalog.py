"""The synthetic event catalog: columns for the interaction funnel, and `Event` models."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import numpy.typing as npt

from eventrec.schemas import Event, EventStatus, Price
from eventrec.synth.config import SynthConfig
from eventrec.synth.vocabulary import CATEGORIES, CITIES

DAY = 86_400
HOUR = 3_600
COLOMBO_TIME = timezone(timedelta(hours=5, minutes=30), "Asia/Colombo")

CATEGORY_SHARES = np.array([0.20, 0.10, 0.10, 0.12, 0.10, 0.08, 0.08, 0.08, 0.14])
GENERAL_TAGS = ("outdoor", "family-friendly", "weekend", "indoor", "all-ages", "late-night")
STATUS_NAMES = (EventStatus.SCHEDULED, EventStatus.CANCELLED, EventStatus.SOLD_OUT)
STATUS_SCHEDULED, STATUS_CANCELLED, STATUS_SOLD_OUT = 0, 1, 2
START_HOURS = np.array([9.0, 10.0, 14.0, 16.0, 18.0, 18.5, 19.0, 19.5, 20.0])

# Every tag of the platform: category tags first, then general ones.
ALL_TAGS = tuple(dict.fromkeys([tag for c in CATEGORIES for tag in c.tags] + list(GENERAL_TAGS)))
TAG_INDEX = {tag: index for index, tag in enumerate(ALL_TAGS)}
CATEGORY_TAGS = tuple(np.array([TAG_INDEX[t] for t in c.tags]) for c in CATEGORIES)

Int = npt.NDArray[np.int64]
Float = npt.NDArray[np.float64]


@dataclass(frozen=True)
class EventTable:
    """The catalog as columns, one row per event (times in epoch seconds)."""

    event_ids: list[str]
    category: Int
    city: Int
    venue: list[str]
    price: Float
    starts_at: Int
    ends_at: Int
    published_at: Int
    status: Int
    popularity: Float  # Zipf-like weight, the planted "everyone likes it" factor
    tags: list[list[int]]
    titles: list[str]

    def __len__(self) -> int:
        return len(self.event_ids)


def weighted_choice(rng: np.random.Generator, shares: Float, size: int) -> Int:
    """Draw ``size`` indices with probabilities ``shares`` (normalised here)."""
    cumulative = np.cumsum(shares / shares.sum())
    cumulative[-1] = 1.0
    return np.searchsorted(cumulative, rng.random(size), side="right").astype(np.int64)


def generate_events(config: SynthConfig, rng: np.random.Generator) -> EventTable:
    n = config.n_events
    now = config.now_epoch
    category = weighted_choice(rng, CATEGORY_SHARES, n)
    city = weighted_choice(rng, np.array([c.share for c in CITIES]), n)

    past = rng.random(n) < config.past_event_share
    # Past events start at least a few days into the history, so they had time on sale.
    day_offset = np.where(
        past,
        -rng.uniform(3, config.history_days - 3, n),
        rng.uniform(0.2, config.horizon_days, n),
    )
    start_day = (now + day_offset * DAY) // DAY * DAY
    start_hour = START_HOURS[rng.integers(0, len(START_HOURS), n)]
    # Hours are Colombo time (UTC+05:30).
    starts_at = (start_day + (start_hour - 5.5) * HOUR).astype(np.int64)
    low = np.array([CATEGORIES[c].duration_hours[0] for c in category])
    high = np.array([CATEGORIES[c].duration_hours[1] for c in category])
    ends_at = starts_at + (rng.uniform(low, high) * 2).round().astype(np.int64) * HOUR // 2

    lead_days = np.clip(rng.lognormal(np.log(30), 0.6, n), 3, 150)
    published_at = starts_at - (lead_days * DAY).astype(np.int64)
    upcoming = starts_at > now
    fresh = upcoming & (rng.random(n) < config.new_event_share)
    published_at = np.where(
        fresh, now - rng.uniform(2 * HOUR, 3 * DAY, n).astype(np.int64), published_at
    )
    # Everything in the catalog is on sale already; nothing is published in the future.
    published_at = np.minimum(published_at, now - 2 * HOUR)
    published_at = np.minimum(published_at, starts_at - 2 * DAY)
    published_at = published_at // 60 * 60

    median = np.array([CATEGORIES[c].median_price for c in category])
    spread = np.array([CATEGORIES[c].price_spread for c in category])
    free_share = np.array([CATEGORIES[c].free_share for c in category])
    price = np.maximum(np.round(median * np.exp(spread * rng.standard_normal(n)) / 50) * 50, 200)
    price = np.where(rng.random(n) < free_share, 0.0, price)

    rank = rng.permutation(n)
    popularity = np.power(rank + 1.0, -0.8, dtype=np.float64)

    status = np.full(n, STATUS_SCHEDULED, dtype=np.int64)
    cancelled = rng.random(n) < 0.03
    status[cancelled] = STATUS_CANCELLED
    # Popular upcoming events are the ones that sell out.
    sold_out = upcoming & ~cancelled & (rank < max(1, n // 10)) & (rng.random(n) < 0.3)
    status[sold_out] = STATUS_SOLD_OUT

    tag_counts = rng.integers(2, 4, n)
    general = rng.random(n) < 0.4
    tags: list[list[int]] = []
    titles: list[str] = []
    venues: list[str] = []
    picks = rng.random((n, 8))
    tag_order = rng.random((n, max(len(pool) for pool in CATEGORY_TAGS)))
    for row in range(n):
        kind = CATEGORIES[category[row]]
        pool = CATEGORY_TAGS[category[row]]
        chosen = pool[np.argsort(tag_order[row, : len(pool)])][: tag_counts[row]].tolist()
        if general[row]:
            chosen.append(TAG_INDEX[GENERAL_TAGS[int(picks[row, 7] * len(GENERAL_TAGS))]])
        tags.append(chosen)
        place = CITIES[city[row]]
        venue = place.venues[int(picks[row, 0] * len(place.venues))]
        venues.append(venue)
        year = datetime.fromtimestamp(int(starts_at[row]), UTC).year
        editions = (str(year), "Vol. 2", "Vol. 3", "Season 4", "Grand Finale", "Special")
        template = kind.titles[int(picks[row, 1] * len(kind.titles))]
        titles.append(
            template.format(
                name=kind.names[int(picks[row, 2] * len(kind.names))],
                city=place.name,
                venue=venue,
                tag=ALL_TAGS[chosen[0]].replace("-", " ").title(),
                edition=editions[int(picks[row, 3] * len(editions))],
            )
        )
    return EventTable(
        event_ids=[f"ev-{index + 1:05d}" for index in range(n)],
        category=category,
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
    )


def _colombo(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, COLOMBO_TIME)


def event_models(
    table: EventTable, total_bookings: Int, rating_sum: Int, rating_count: Int
) -> list[Event]:
    """The catalog as published on the ``events`` topic, with its state as of "now"."""
    events = []
    for row, event_id in enumerate(table.event_ids):
        kind = CATEGORIES[table.category[row]]
        city = CITIES[table.city[row]].name
        tag_names = [ALL_TAGS[tag] for tag in table.tags[row]]
        price = int(table.price[row])
        count = int(rating_count[row])
        cost = "Free entry" if price == 0 else f"Tickets from LKR {price:,}"
        events.append(
            Event(
                schema_version=1,
                event_id=event_id,
                title=table.titles[row],
                description=(
                    f"{table.titles[row]}: {kind.name} at {table.venue[row]}, {city}. "
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
            )
        )
    return events
