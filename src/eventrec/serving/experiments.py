"""Which experiment and variant a user is in, and what that variant serves.

Loaded off the request path with the model and catalog (``serving.runtime``); the
assignment itself is a hash of (experiment, user), so every worker and every restart
agrees without storing anything.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventrec.model.assignment import assign_variant
from eventrec.schemas.impressions import Experiment


@dataclass(frozen=True)
class Assignment:
    experiment: Experiment
    variant_index: int

    @property
    def variant_name(self) -> str:
        return self.experiment.variants[self.variant_index].name

    @property
    def model_version(self) -> str | None:
        return self.experiment.variants[self.variant_index].model_version

    @property
    def strategy(self) -> str:
        return self.experiment.variants[self.variant_index].strategy

    @property
    def hybrid(self) -> str:
        """``on``: the version's learned blend; ``off``: its collaborative scores alone."""
        return self.experiment.variants[self.variant_index].hybrid


def assign(experiments: list[Experiment], user_id: str) -> Assignment | None:
    """The oldest running experiment whose traffic includes the user, and its variant."""
    for experiment in experiments:
        if experiment.status != "running":
            continue
        index = assign_variant(experiment.name, user_id, experiment.weights, experiment.traffic)
        if index is not None:
            return Assignment(experiment, index)
    return None
