"""`eventrec evaluate`: offline evaluation of eventrec against its baselines on a CSV file."""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from eventrec.config import Settings
from eventrec.evaluation.loader import (
    EvaluationInputError,
    RatedLog,
    load_interactions,
    load_train_test,
)
from eventrec.evaluation.splits import SPLITS, split_test_mask

__all__ = ["register", "run_evaluate"]

logger = logging.getLogger("eventrec.evaluation")


def _fraction(text: str) -> float:
    value = float(text)
    if not 0.0 < value < 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def _bad_fraction(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1, not {text}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, not {text}")
    return value


def _cuts(text: str) -> list[str]:
    """Comma-separated cut instants, each a fraction in (0, 1) or ISO 8601 with a zone."""
    tokens = [token.strip() for token in text.split(",") if token.strip()]
    if not tokens:
        raise argparse.ArgumentTypeError("no cut given")
    for token in tokens:
        try:
            fraction: float | None = float(token)
        except ValueError:
            fraction = None
        if fraction is not None:
            if not 0.0 < fraction < 1.0:
                raise argparse.ArgumentTypeError(f"a fraction must be in (0, 1), not {token}")
            continue
        try:
            moment = datetime.fromisoformat(token.replace("Z", "+00:00"))
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{token!r} is neither a fraction nor ISO 8601"
            ) from None
        if moment.tzinfo is None:
            raise argparse.ArgumentTypeError(f"{token!r} needs a time zone")
    return tokens


def cut_seconds(tokens: list[str] | None, times: np.ndarray) -> list[float]:
    """Cut instants in epoch seconds: fractions of the span of ``times``, or ISO instants."""
    from eventrec.model.timecut import DEFAULT_CUT_FRACTIONS, cut_instants

    if tokens is None:
        return cut_instants(times, DEFAULT_CUT_FRACTIONS)
    instants = []
    for token in tokens:
        try:
            instants.extend(cut_instants(times, [float(token)]))
        except ValueError:
            instants.append(datetime.fromisoformat(token.replace("Z", "+00:00")).timestamp())
    return instants


def register(commands: Any) -> None:
    """Add the ``evaluate`` subcommand to ``eventrec``'s sub-parsers object."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "evaluate",
        help="compare eventrec with popularity and the guide's SVD on an interaction CSV",
        description=(
            "Offline evaluation: full ranking over every event seen in training (the user's "
            "training events excluded); relevant = test bookings, saves and ratings >= "
            "--relevant-min-rating. CSV columns by name: user_id|userId|user, "
            "event_id|item_id|itemId|movieId|event|item, rating, timestamp (epoch seconds "
            "or ISO 8601), type (optional, default rating)."
        ),
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--interactions", type=Path, metavar="FILE.csv", help="split this file")
    source.add_argument("--train", type=Path, metavar="FILE.csv", help="a given training file")
    parser.add_argument("--test", type=Path, metavar="FILE.csv", help="the given test file")
    parser.add_argument(
        "--split",
        choices=(*SPLITS, "time"),
        default="random",
        help=(
            "how --interactions is split; each (user, event) pair stays whole (default "
            "random); time: train before each cut, rank what was on sale at it"
        ),
    )
    parser.add_argument(
        "--events",
        type=Path,
        metavar="FILE",
        help="--split time: the catalogue (events-topic JSON lines, or CSV with event_id, "
        "title, description, category, tags, venue, city, price, starts_at, published_at)",
    )
    parser.add_argument(
        "--users",
        type=Path,
        metavar="FILE",
        help="--split time: user profiles (users-topic JSON lines, or CSV with user_id, "
        "city, preferred_categories); users with one but no earlier record are new_users",
    )
    parser.add_argument(
        "--cuts",
        type=_cuts,
        default=None,
        metavar="LIST",
        help="--split time: comma-separated cut instants, as fractions of the data's time "
        "span or ISO 8601 (default 0.7,0.8,0.9)",
    )
    parser.add_argument(
        "--horizon-days",
        type=_positive_float,
        default=30.0,
        help="--split time: days after a cut whose interactions are relevant (default 30)",
    )
    parser.add_argument(
        "--test-fraction",
        type=_fraction,
        default=0.2,
        help="fraction of (user, event) pairs held out by random and temporal (default 0.2)",
    )
    parser.add_argument("--seed", type=int, default=42, help="split and model seed (default 42)")
    parser.add_argument("--k", type=_positive, default=10, help="ranking cut-off (default 10)")
    parser.add_argument(
        "--relevant-min-rating",
        type=float,
        default=4.0,
        help="lowest test rating, on the file's scale, that counts as relevant (default 4)",
    )
    parser.add_argument(
        "--max-bad-fraction",
        type=_bad_fraction,
        default=0.01,
        help="stop when more than this fraction of a file's rows is malformed (default 0.01)",
    )
    parser.add_argument(
        "--n-jobs", type=_positive, default=2, help="parallel jobs of eventrec's search"
    )
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the result as JSON")
    parser.set_defaults(handler=run_evaluate, json_logs=False)


def _load(args: argparse.Namespace) -> tuple[RatedLog, RatedLog, str, float | None]:
    """Train and test logs, the split's name and its test fraction."""
    started = time.perf_counter()
    if args.interactions is not None:
        if args.test is not None:
            raise EvaluationInputError("--test goes with --train, not with --interactions")
        logger.info("loading %s", args.interactions)
        rated, warning = load_interactions(
            args.interactions, max_bad_fraction=args.max_bad_fraction
        )
        warnings = [warning] if warning else []
        test_mask = split_test_mask(rated.log, args.split, args.test_fraction, args.seed)
        train, test = rated.subset(~test_mask), rated.subset(test_mask)
        split, test_fraction = (
            args.split,
            (None if args.split == "leave-last" else args.test_fraction),
        )
    else:
        if args.test is None:
            raise EvaluationInputError("--train needs --test")
        logger.info("loading %s and %s", args.train, args.test)
        train, test, warnings = load_train_test(
            args.train, args.test, max_bad_fraction=args.max_bad_fraction
        )
        split, test_fraction = "given", None
    for warning in warnings:
        print(f"eventrec evaluate: {warning}", file=sys.stderr)
    if not len(train.log) or not len(test.log):
        raise EvaluationInputError(
            f"{len(train.log)} training and {len(test.log)} test interactions: need both"
        )
    logger.info(
        "loaded %d users, %d events: %d training and %d test interactions in %.2f s",
        train.log.n_users,
        train.log.n_events,
        len(train.log),
        len(test.log),
        time.perf_counter() - started,
    )
    return train, test, split, test_fraction


def _json_value(value: Any) -> Any:
    """numpy scalars and arrays in a model's params, as JSON values."""
    if isinstance(value, np.generic | np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def run_evaluate(args: argparse.Namespace, settings: Settings) -> int:
    """Handler of ``eventrec evaluate``: print the table, write ``--json`` if asked."""
    # The models pull in scikit-learn: imported here so other commands start fast.
    from eventrec.evaluation.protocol import evaluate_log
    from eventrec.evaluation.report import format_table

    if args.split == "time":
        return _run_time(args, settings)
    if args.events is not None or args.users is not None or args.cuts is not None:
        raise EvaluationInputError("--events, --users and --cuts go with --split time")
    train, test, split, test_fraction = _load(args)
    result = evaluate_log(
        train.log,
        test.log,
        k=args.k,
        relevant_min_rating=args.relevant_min_rating,
        seed=args.seed,
        split=split,
        test_fraction=test_fraction,
        train_raw_rating=train.raw_rating,
        test_raw_rating=test.raw_rating,
        n_jobs=args.n_jobs,
    )
    print(format_table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=_json_value) + "\n")
        logger.info("wrote %s", args.json)
    return 0


def _run_time(args: argparse.Namespace, settings: Settings) -> int:
    """``eventrec evaluate --split time``: the time protocol over the whole file."""
    from eventrec.evaluation.catalogue import load_events, load_profiles
    from eventrec.evaluation.report import format_time_table
    from eventrec.evaluation.time_protocol import ServedOptions, evaluate_time
    from eventrec.model.records import InteractionLog

    if args.interactions is None:
        raise EvaluationInputError("--split time needs --interactions (one file, cut in time)")
    logger.info("loading %s", args.interactions)
    rated, warning = load_interactions(args.interactions, max_bad_fraction=args.max_bad_fraction)
    if warning:
        print(f"eventrec evaluate: {warning}", file=sys.stderr)
    if not len(rated.log):
        raise EvaluationInputError(f"{args.interactions}: no interactions")
    event_index = {event_id: i for i, event_id in enumerate(rated.event_ids)}
    user_index = {user_id: i for i, user_id in enumerate(rated.user_ids)}
    documents = dates = profiles = None
    log = rated.log
    if args.events is not None:
        logger.info("loading %s", args.events)
        catalogue = load_events(args.events, event_index)
        documents, dates = catalogue.documents, catalogue.dates
        log = InteractionLog(log.user, log.records, log.n_users, len(event_index))
    if args.users is not None:
        logger.info("loading %s", args.users)
        profiles = load_profiles(args.users, user_index)
    result = evaluate_time(
        log,
        rated.raw_rating,
        cut_seconds(args.cuts, log.records["time"]),
        documents=documents,
        dates=dates,
        profiles=profiles,
        horizon_days=args.horizon_days,
        relevant_min_rating=args.relevant_min_rating,
        k=args.k,
        seed=args.seed,
        n_jobs=args.n_jobs,
        served=ServedOptions(
            trending_half_life_days=settings.trending_half_life_days,
            min_records=settings.min_interactions_personal,
            hide_viewed=settings.hide_viewed,
            search_users=settings.train_search_users,
            max_validation_users=settings.train_validation_users,
            max_factor_cells=settings.train_max_factor_cells,
        ),
    )
    print(format_time_table(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2, default=_json_value) + "\n")
        logger.info("wrote %s", args.json)
    return 0
