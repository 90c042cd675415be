"""The size, seed and clock of a synthetic platform."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

# A fixed default clock, so a config without `now` generates the same platform every day.
DEFAULT_NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class SynthConfig:
    """How big the synthetic platform is, its random seed and the instant it calls "now".

    Events start between ``history_days`` before ``now`` and ``horizon_days`` after it;
    interactions happen in the ``history_days`` before ``now``.
    """

    n_users: int = 1_000
    n_events: int = 300
    n_interactions: int = 30_000
    seed: int = 0
    now: datetime = field(default=DEFAULT_NOW)
    history_days: int = 180
    horizon_days: int = 120
    past_event_share: float = 0.35
    new_event_share: float = 0.08  # upcoming events that went on sale in the last few days
    search_share: float = 0.03
    dismiss_share: float = 0.03

    def __post_init__(self) -> None:
        if self.n_users < 1 or self.n_events < 1 or self.n_interactions < 0:
            raise ValueError("need at least one user and one event, and n_interactions >= 0")
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("now must be timezone-aware")
        if self.history_days < 7 or self.horizon_days < 7:
            raise ValueError("history_days and horizon_days must be at least 7")
        for name in ("past_event_share", "new_event_share", "search_share", "dismiss_share"):
            if not 0.0 <= getattr(self, name) <= 0.5:
                raise ValueError(f"{name} must be within [0, 0.5]")

    @property
    def now_epoch(self) -> int:
        """``now`` in whole seconds since the Unix epoch."""
        return int(self.now.timestamp())
