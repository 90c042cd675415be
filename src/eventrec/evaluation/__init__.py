"""eventrec.evaluation: splits, baselines and offline evaluation runs (``eventrec evaluate``)."""

from eventrec.evaluation.baselines import GuideSvdCosine, Popularity, Ranker
from eventrec.evaluation.loader import (
    EvaluationInputError,
    RatedLog,
    load_interactions,
    load_train_test,
)
from eventrec.evaluation.protocol import evaluate_log
from eventrec.evaluation.report import format_table
from eventrec.evaluation.splits import split_test_mask

__all__ = [
    "EvaluationInputError",
    "GuideSvdCosine",
    "Popularity",
    "Ranker",
    "RatedLog",
    "evaluate_log",
    "format_table",
    "load_interactions",
    "load_train_test",
    "split_test_mask",
]
