"""The interaction funnel: views → saves → bookings → ratings, driven by planted tastes.

A user's propensity for an event is taste × distance × budget fit × the event's
popularity, where taste = category affinity^(1 − s) × latent affinity^s and s is
``latent_share``. How much of an event's engagement falls inside the history depends on
when it was on sale: first contacts come over its weeks on sale, bookings mostly in its
last days. Users are sampled in blocks against the whole catalog with numpy, so a
million interactions take seconds.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from eventrec.model.geo import haversine_km
from eventrec.synth.catalog import (
    ALL_TAGS,
    DAY,
    HOUR,
    STATUS_CANCELLED,
    EventTable,
    weighted_choice,
)
from eventrec.synth.config import SynthConfig
from eventrec.synth.population import UserTable
from eventrec.synth.truth import LATENT_SHARPNESS, budget_fit, window_mass
from eventrec.synth.truth import taste as planted_taste
from eventrec.synth.vocabulary import CATEGORIES, CITIES

Int = npt.NDArray[np.int64]
Float = npt.NDArray[np.float64]

TYPE_NAMES = ("view", "save", "booking", "booking_cancelled", "rating", "dismiss", "search")
VIEW, SAVE, BOOKING, BOOKING_CANCELLED, RATING, DISMISS, SEARCH = range(len(TYPE_NAMES))

# Order of the funnel's steps, so ties within a second keep view < save < booking < ...
_STEP = np.array([0, 2, 3, 4, 5, 1, 1])

QUERIES = tuple(
    dict.fromkeys(
        [c.name for c in CATEGORIES]
        + [c.name for c in CITIES]
        + [tag.replace("-", " ") for tag in ALL_TAGS]
    )
)
_QUERY_INDEX = {query: index for index, query in enumerate(QUERIES)}
_CATEGORY_QUERY = np.array([_QUERY_INDEX[c.name] for c in CATEGORIES])
_CITY_QUERY = np.array([_QUERY_INDEX[c.name] for c in CITIES])
_TAG_QUERY = np.array([_QUERY_INDEX[tag.replace("-", " ")] for tag in ALL_TAGS])

# Matrix cells (users × events) per sampling block: bounds memory at a few tens of MB.
_BLOCK_CELLS = 3_000_000


# First contacts come over the weeks on sale: this many times ``booking_days`` on average.
CONTACT_SPREAD = 2.5


def _city_reach() -> Float:
    """How likely a user of one city goes to an event in another: same ≫ nearby ≫ far."""
    reach = np.empty((len(CITIES), len(CITIES)))
    for i, home in enumerate(CITIES):
        for j, there in enumerate(CITIES):
            km = haversine_km((home.latitude, home.longitude), (there.latitude, there.longitude))
            reach[i, j] = 1.0 if i == j else 0.2 if km < 60 else 0.06 if km < 130 else 0.015
    return reach


CITY_REACH = _city_reach()


@dataclass(frozen=True)
class InteractionTable:
    """Interactions as columns, in time order (``time`` ascending, per user strictly).

    ``event`` is -1 for searches; ``rating``, ``quantity`` are 0, and ``booking`` and
    ``query`` -1, where the type has none.
    """

    user: Int
    event: Int
    kind: Int
    time: Int  # epoch seconds
    rating: Int
    quantity: Int
    booking: Int
    query: Int

    def __len__(self) -> int:
        return len(self.user)


def taste(users: UserTable, events: EventTable, rows: Int) -> Float:
    """Category affinity^(1 − s) × latent affinity^s, shape (len(rows), n_events), in (0, 1]."""
    return planted_taste(
        users.affinity[rows], events.category, users.latent[rows], events.latent, users.latent_share
    )


def propensity(users: UserTable, events: EventTable, rows: Int) -> Float:
    """Planted propensity of users ``rows`` for every event, shape (len(rows), n_events)."""
    return (
        taste(users, events, rows)
        * CITY_REACH[users.city[rows]][:, events.city]
        * budget_fit(events.price[None, :], users.budget_max[rows][:, None])
        * events.popularity[None, :]
    )


def days_before_start(
    rng: np.random.Generator, near_days: Float, far_days: Float, mean_days: float
) -> Float:
    """Draws from the truncated exponential between ``near_days`` and ``far_days``."""
    near, far = np.exp(-near_days / mean_days), np.exp(-np.maximum(far_days, near_days) / mean_days)
    days: Float = -mean_days * np.log(near - rng.random(len(near_days)) * (near - far))
    return np.clip(days, near_days, np.maximum(far_days, near_days))


def _sample_per_row(weights: Float, counts: Int, rng: np.random.Generator) -> tuple[Int, Int]:
    """Draw ``counts[r]`` columns of row ``r`` with probability ∝ ``weights[r]``, all at once."""
    n_rows, n_cols = weights.shape
    cumulative = np.cumsum(weights, axis=1)
    totals = cumulative[:, -1].copy()
    counts = np.where(totals > 0, counts, 0)
    cumulative /= np.where(totals > 0, totals, 1.0)[:, None]
    cumulative[:, -1] = 1.0  # exact row ends, so row r's draws never land in row r-1
    cumulative += np.arange(n_rows)[:, None]
    rows = np.repeat(np.arange(n_rows), counts)
    positions = np.searchsorted(cumulative.ravel(), rows + rng.random(len(rows)), side="right")
    columns = np.clip(positions - rows * n_cols, 0, n_cols - 1)
    return rows, columns


def _uniform_between(rng: np.random.Generator, low: Int, high: Int) -> Int:
    offset: Int = (rng.random(len(low)) * np.maximum(high - low, 0)).astype(np.int64)
    return low + offset


def generate_interactions(
    config: SynthConfig, users: UserTable, events: EventTable, rng: np.random.Generator
) -> InteractionTable:
    now = config.now_epoch
    history_start = now - config.history_days * DAY
    end_of_history = now - HOUR
    n_users, n_events = len(users), len(events)
    total = config.n_interactions

    # Views, saves and bookings happen while the event is on sale and before it starts.
    open_from = np.maximum(events.published_at, history_start)
    open_until = np.minimum(events.starts_at - HOUR, end_of_history)
    on_sale_days = np.maximum(open_until - open_from, 0) / DAY
    # In days before the start: what of the time on sale the history saw.
    lead = (events.starts_at - events.published_at) / DAY
    near = (events.starts_at - open_until) / DAY
    far = (events.starts_at - open_from) / DAY
    contact_days = CONTACT_SPREAD * config.booking_days
    time_weight = np.where(on_sale_days > 0, window_mass(near, far, lead, contact_days), 0.0)

    n_searches = round(total * config.search_share)
    n_dismiss_draws = round(total * config.dismiss_share)
    engagement_budget = total - n_searches - n_dismiss_draws
    # About 60% of the engagement budget goes to first contacts, whose funnel adds ~40%.
    n_draws = math.ceil(engagement_budget * 0.6 / 1.4 * 1.1)

    share = users.activity / users.activity.sum()
    draws_per_user = rng.multinomial(n_draws, share).astype(np.int64)
    dismisses_per_user = rng.multinomial(n_dismiss_draws, share).astype(np.int64)

    block = max(1, _BLOCK_CELLS // n_events)
    pair_users, pair_events, dismiss_users, dismiss_events = [], [], [], []
    # Each user's best taste over the catalog: the funnel reads taste relative to it.
    best_taste = np.ones(n_users)
    for start in range(0, n_users, block):
        rows = np.arange(start, min(start + block, n_users))
        tastes = taste(users, events, rows)
        best_taste[rows] = tastes.max(axis=1)
        reach = CITY_REACH[users.city[rows]][:, events.city]
        weights = (
            tastes
            * reach
            * budget_fit(events.price[None, :], users.budget_max[rows][:, None])
            * (events.popularity * time_weight)[None, :]
        )
        picked_rows, picked_events = _sample_per_row(weights, draws_per_user[rows], rng)
        pair_users.append(rows[picked_rows])
        pair_events.append(picked_events)
        # Dismissals: what the platform showed them outside their tastes.
        outside = tastes <= 0.05 * best_taste[rows][:, None]
        dismiss_weights = outside * reach * (events.popularity * time_weight)[None, :]
        picked_rows, picked_events = _sample_per_row(dismiss_weights, dismisses_per_user[rows], rng)
        dismiss_users.append(rows[picked_rows])
        dismiss_events.append(picked_events)

    # One first contact per (user, event); repeated draws become repeat views below.
    codes = np.concatenate(pair_users) * n_events + np.concatenate(pair_events)
    codes = np.unique(codes)
    codes = codes[rng.permutation(len(codes))]
    user = codes // n_events
    event = codes % n_events

    # How much the user likes it among what they could like: 1 for their best match.
    affinity = np.minimum(_pair_taste(users, events, user, event) / best_taste[user], 1.0)
    fit = budget_fit(events.price[event], users.budget_max[user])
    low, high = open_from[event], open_until[event]
    cancelled_event = events.status[event] == STATUS_CANCELLED

    saved = rng.random(len(user)) < 0.06 + 0.3 * affinity
    booked = rng.random(len(user)) < (0.02 + 0.25 * affinity) * fit
    # Most bookings of a cancelled event are refunded; a few of the others are cancelled too.
    cancel_chance = np.where(cancelled_event, 0.9, 0.05)
    booking_cancelled = booked & (rng.random(len(user)) < cancel_chance)
    rating_from = events.ends_at[event]
    rating_until = np.minimum(rating_from + 10 * DAY, end_of_history)
    rated = (
        booked
        & ~booking_cancelled
        & ~cancelled_event
        & (rating_until > rating_from)
        & (rng.random(len(user)) < 0.55)
    )

    # Fit the funnel into the budget exactly: drop contacts that do not fit (order is random).
    cost = 1 + saved + booked + booking_cancelled + rated
    keep = np.cumsum(cost) <= engagement_budget
    user, event, affinity, low, high = (
        user[keep],
        event[keep],
        affinity[keep],
        low[keep],
        high[keep],
    )
    saved, booked = saved[keep], booked[keep]
    booking_cancelled, rated = booking_cancelled[keep], rated[keep]
    rating_from, rating_until = rating_from[keep], rating_until[keep]

    starts = events.starts_at[event]
    viewed_at = _before_start(rng, starts, low, high, CONTACT_SPREAD * config.booking_days)
    saved_at = _before_start(rng, starts, viewed_at, high, CONTACT_SPREAD * config.booking_days)
    booked_at = _before_start(
        rng, starts, np.where(saved, saved_at, viewed_at), high, config.booking_days
    )
    cancelled_at = _uniform_between(rng, booked_at, high)
    rated_at = _uniform_between(rng, rating_from, rating_until)
    quantity = weighted_choice(rng, np.array([0.5, 0.3, 0.1, 0.1]), len(user)) + 1
    stars: Int = np.clip(
        np.round(2.0 + 2.8 * affinity + rng.normal(0, 0.8, len(user))), 1, 5
    ).astype(np.int64)
    booking_number = np.cumsum(booked) - 1  # booking ids number the bookings 0, 1, ...

    parts: list[dict[str, Int]] = []

    def add(mask: npt.NDArray[np.bool_], kind: int, time: Int, **columns: Int) -> None:
        part = {"user": user[mask], "event": event[mask], "time": time[mask]}
        part["kind"] = np.full(int(mask.sum()), kind, dtype=np.int64)
        part.update({name: values[mask].astype(np.int64) for name, values in columns.items()})
        parts.append(part)

    everyone = np.ones(len(user), dtype=bool)
    add(everyone, VIEW, viewed_at)
    add(saved, SAVE, saved_at)
    add(booked, BOOKING, booked_at, quantity=quantity, booking=booking_number)
    add(
        booking_cancelled,
        BOOKING_CANCELLED,
        cancelled_at,
        quantity=quantity,
        booking=booking_number,
    )
    add(rated, RATING, rated_at, rating=stars)

    dismiss_user = np.concatenate(dismiss_users)
    dismiss_event = np.concatenate(dismiss_events)
    # A user dismisses an event once, and never one they engaged with.
    dismiss_codes = np.unique(dismiss_user * n_events + dismiss_event)
    dismiss_codes = dismiss_codes[~np.isin(dismiss_codes, user * n_events + event)]
    dismiss_user, dismiss_event = dismiss_codes // n_events, dismiss_codes % n_events
    parts.append(
        {
            "user": dismiss_user,
            "event": dismiss_event,
            "time": _uniform_between(rng, open_from[dismiss_event], open_until[dismiss_event]),
            "kind": np.full(len(dismiss_user), DISMISS, dtype=np.int64),
        }
    )

    # Whatever the budget has left: repeat views of events the user already looked at.
    used = sum(len(part["user"]) for part in parts)
    n_repeats = max(total - used - n_searches, 0) if len(user) else 0
    n_searches = total - used - n_repeats
    if n_repeats:
        interest = (0.3 + affinity) * (1.0 + saved + 2.0 * booked)
        contact = weighted_choice(rng, interest, n_repeats)
        parts.append(
            {
                "user": user[contact],
                "event": event[contact],
                "time": _uniform_between(rng, viewed_at[contact], high[contact]),
                "kind": np.full(n_repeats, VIEW, dtype=np.int64),
            }
        )

    search_user = weighted_choice(rng, users.activity, n_searches)
    parts.append(
        {
            "user": search_user,
            "event": np.full(n_searches, -1, dtype=np.int64),
            "time": _uniform_between(
                rng,
                np.full(n_searches, history_start, dtype=np.int64),
                np.full(n_searches, end_of_history, dtype=np.int64),
            ),
            "kind": np.full(n_searches, SEARCH, dtype=np.int64),
            "query": _search_queries(users, search_user, rng),
        }
    )
    return _in_time_order(parts)


def _pair_taste(users: UserTable, events: EventTable, user: Int, event: Int) -> Float:
    """`taste` of each (user, event) pair, without the full matrix."""
    share = users.latent_share
    log_visible = np.log(users.affinity[user, events.category[event]])
    cosine = np.einsum("ij,ij->i", users.latent[user], events.latent[event])
    result: Float = np.exp((1.0 - share) * log_visible + share * LATENT_SHARPNESS * (cosine - 1.0))
    return result


def _before_start(
    rng: np.random.Generator, starts: Int, low: Int, high: Int, mean_days: float
) -> Int:
    """An instant in [low, high], exponentially more likely close to the start."""
    days = days_before_start(rng, (starts - high) / DAY, (starts - low) / DAY, mean_days)
    moment: Int = np.clip(starts - np.round(days * DAY).astype(np.int64), low, high)
    return moment


def _search_queries(users: UserTable, user: Int, rng: np.random.Generator) -> Int:
    """Half search a preferred category, a fifth their city, the rest one of their interests."""
    n = len(user)
    mode = rng.random(n)
    slot = (rng.random(n) * users.n_preferred[user]).astype(np.int64)
    category = users.preferred[user, slot]
    interest_tags = [users.interests[u] for u in user.tolist()]
    picks = rng.random(n)
    tag = np.array(
        [tags[int(p * len(tags))] for tags, p in zip(interest_tags, picks, strict=True)],
        dtype=np.int64,
    )
    return np.where(
        mode < 0.5,
        _CATEGORY_QUERY[category],
        np.where(mode < 0.7, _CITY_QUERY[users.city[user]], _TAG_QUERY[tag]),
    ).astype(np.int64)


def _in_time_order(parts: list[dict[str, Int]]) -> InteractionTable:
    n = sum(len(part["user"]) for part in parts)
    columns: dict[str, Int] = {}
    for name, missing in (
        ("user", 0),
        ("event", -1),
        ("kind", 0),
        ("time", 0),
        ("rating", 0),
        ("quantity", 0),
        ("booking", -1),
        ("query", -1),
    ):
        columns[name] = np.concatenate(
            [part.get(name, np.full(len(part["user"]), missing, dtype=np.int64)) for part in parts]
        )
    order = np.lexsort((_STEP[columns["kind"]], columns["time"], columns["user"]))
    for name in columns:
        columns[name] = columns[name][order]
    user, time = columns["user"], columns["time"]
    # Strictly increasing per user: push a tie one second later (rank·BIG separates users).
    position = np.arange(n, dtype=np.int64)
    separated = time - position + user * (1 << 40)
    columns["time"] = np.maximum.accumulate(separated) - user * (1 << 40) + position
    order = np.argsort(columns["time"], kind="stable")
    return InteractionTable(**{name: values[order] for name, values in columns.items()})
