"""The size, seed, clock and planted structure of a synthetic platform."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

# A fixed default clock, so a config without `now` generates the same platform every day.
DEFAULT_NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SynthConfig:
    """How big the synthetic platform is, its random seed and the instant it calls "now".

    Events start between ``history_days`` before ``now`` and ``horizon_days`` after it;
    interactions happen in the ``history_days`` before ``now``. ``latent_share`` is the
    share of a user's taste (in log-propensity) that is latent: performers, organizers,
    series and scenes, rather than category; city and price weigh the same at any share.
    """

    n_users: int = 1_000
    n_events: int = 300
    n_interactions: int = 30_000
    seed: int = 0
    now: datetime = field(default=DEFAULT_NOW)
    latent_share: float = 0.5
    history_days: int = 180
    horizon_days: int = 120
    past_event_share: float = 0.5
    new_event_share: float = 0.08  # upcoming events that went on sale in the last few days
    lead_days: float = 35.0  # median time on sale, announcement to start
    booking_days: float = 6.0  # mean days before the start a booking is made
    search_share: float = 0.03
    dismiss_share: float = 0.03

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.n_events < 1 or self.n_interactions < 0:
            raise ValueError("need at least one user and one event, and n_interactions >= 0")
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        if self.history_days < 7 or self.horizon_days < 7:
            raise ValueError("history_days and horizon_days must be at least 7")
        if not 0.0 <= self.latent_share <= 1.0:
            raise ValueError("latent_share must be within [0, 1]")
        if not 0.0 <= self.past_event_share <= 0.9:
            raise ValueError("past_event_share must be within [0, 0.9]")
        for name in ("new_event_share", "search_share", "dismiss_share"):
            if not 0.0 <= getattr(self, name) <= 0.5:
                raise ValueError(f"{name} must be within [0, 0.5]")
        if not 7 <= self.lead_days <= 150:
            raise ValueError("lead_days must be within [7, 150]")
        if not 0.5 <= self.booking_days <= self.lead_days:
            raise ValueError("booking_days must be within [0.5, lead_days]")

    @property
    def now_epoch(self) -> int:
        """``now`` in whole seconds since the Unix epoch."""
        return int(self.now.timestamp())
