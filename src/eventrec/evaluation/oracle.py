"""``oracle`` under the time protocol: the synthetic platform's planted truth as a model.

Only a platform written by ``eventrec synth --out`` has one (``truth.npz``), so the oracle
is not in :data:`~eventrec.evaluation.time_protocol.TIME_MODELS`: :func:`with_oracle`
adds it next to them when a truth is given. It learns nothing from the records: at each
cut it ranks by :func:`eventrec.synth.truth.oracle_scores`, the expected bookings in
``[T, T + horizon)``. The single signals are measured against it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from zipfile import BadZipFile

import numpy as np

from eventrec.evaluation.loader import EvaluationInputError
from eventrec.evaluation.time_protocol import TIME_MODELS, TimeContext, TimeModelFactory
from eventrec.model.timecut import EventDates
from eventrec.synth.truth import PlantedTastes, oracle_scores

__all__ = ["PlantedOracle", "load_truth", "with_oracle"]


class PlantedOracle:
    """Scores every event of the log for log users by the planted truth at the cut.

    ``user_ids[i]`` and ``event_ids[j]`` name the log's user and event indices.
    """

    def __init__(
        self, truth: PlantedTastes, user_ids: Sequence[str], event_ids: Sequence[str]
    ) -> None:
        self.truth = truth
        self.user_ids = user_ids
        self.event_ids = event_ids
        self.params_: dict[str, Any] = {}

    def fit(self, context: TimeContext) -> PlantedOracle:
        self.event_ids_ = list(self.event_ids)
        self.at_ = context.cut.cut
        self.horizon_days_ = context.horizon_days
        self.params_ = {
            "score": "planted propensity x share of bookings in [T, T + horizon)",
            "latent_share": self.truth.latent_share,
        }
        return self

    def score(self, users: np.ndarray) -> np.ndarray:
        return oracle_scores(
            self.truth,
            [self.user_ids[u] for u in users.tolist()],
            self.event_ids_,
            self.at_,
            self.horizon_days_,
        )


def load_truth(
    path: str | Path,
    user_ids: Sequence[str],
    event_ids: Sequence[str],
    dates: EventDates | None = None,
) -> PlantedTastes:
    """The planted truth of ``path``, checked to know every user and event of the log and,
    with the catalogue's ``dates``, to start each event when the catalogue does."""
    try:
        truth = PlantedTastes.load(path)
    except (OSError, ValueError, KeyError, BadZipFile) as exc:
        raise EvaluationInputError(f"{path}: not a truth.npz of eventrec synth ({exc})") from None
    for kind, ids, known in (
        ("users", user_ids, truth.user_ids),
        ("events", event_ids, truth.event_ids),
    ):
        unknown = len(set(ids) - set(known.tolist()))
        if unknown:
            raise EvaluationInputError(
                f"{path}: {unknown} of the {len(ids)} {kind} are not in this truth: "
                "it is another platform's"
            )
    if dates is not None:
        row = {event_id: i for i, event_id in enumerate(truth.event_ids.tolist())}
        planted = truth.event_starts_at[[row[e] for e in event_ids]].astype(np.float64)
        listed = np.isfinite(dates.starts_at)
        differ = int((planted[listed] != dates.starts_at[listed]).sum())
        if differ:
            raise EvaluationInputError(
                f"{path}: {differ} events start at other times than in the catalogue: "
                "it is another platform's"
            )
    return truth


def with_oracle(
    truth: PlantedTastes,
    user_ids: Sequence[str],
    event_ids: Sequence[str],
    models: Mapping[str, TimeModelFactory] = TIME_MODELS,
) -> dict[str, TimeModelFactory]:
    """``models`` and, last, ``oracle`` over the log's ids."""

    def oracle(seed: int, n_jobs: int) -> PlantedOracle:
        return PlantedOracle(truth, user_ids, event_ids)

    return {**models, "oracle": oracle}
