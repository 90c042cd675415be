"""`eventrec experiment create|list|show|stop|report`: the admin endpoints, from a shell."""

from __future__ import annotations

import argparse
import json
from typing import Any

from pydantic import ValidationError

from eventrec.config import Settings
from eventrec.errors import ExperimentError
from eventrec.experiments.report import build_report, format_report
from eventrec.schemas.decode import format_validation_error
from eventrec.schemas.impressions import ExperimentSpec, parse_split, parse_variant
from eventrec.store.attribution import AttributionStore
from eventrec.store.experiments import ExperimentStore
from eventrec.store.store import connect

__all__ = ["register"]


def _spec(args: argparse.Namespace) -> ExperimentSpec:
    try:
        variants = [parse_variant(text) for text in args.variant]
        split = parse_split(args.split) if args.split else None
        return ExperimentSpec(
            name=args.name,
            variants=variants,
            split=split,
            traffic=args.traffic / 100,
            primary_metric=args.metric,
        )
    except ValidationError as exc:
        raise ExperimentError(format_validation_error(exc)) from None
    except ValueError as exc:
        raise ExperimentError(str(exc)) from None


def _line(experiment: Any) -> str:
    variants = ", ".join(
        f"{v.name}={v.model_version or 'no model'}"
        + ("" if v.strategy == "default" else f"/{v.strategy}")
        + ("" if v.hybrid == "on" else "/hybrid=off")
        for v in experiment.variants
    )
    split = "/".join(f"{w:g}" for w in experiment.weights)
    return (
        f"{experiment.name:<20} {experiment.status:<8} code {experiment.code:<4} "
        f"split {split:<8} traffic {experiment.traffic * 100:g} %  "
        f"metric {experiment.primary_metric}  [{variants}]  "
        f"since {experiment.created_at:%Y-%m-%d %H:%M}"
    )


def _experiment(args: argparse.Namespace, settings: Settings) -> int:
    client = connect(settings.redis_url)
    experiments = ExperimentStore(client, settings.key_prefix)
    if args.action == "create":
        experiment = experiments.create(_spec(args))
        print(_line(experiment))
    elif args.action == "list":
        listed = experiments.all()
        if not listed:
            print("no experiments yet")
        for experiment in listed:
            print(_line(experiment))
    elif args.action == "show":
        print(experiments.get(args.name).model_dump_json(indent=2))
    elif args.action == "stop":
        print(_line(experiments.stop(args.name)))
    else:
        attribution = AttributionStore(client, settings.key_prefix)
        report = build_report(attribution, settings.topic_impressions, experiments.get(args.name))
        print(json.dumps(report, indent=2) if args.json else format_report(report))
    return 0


def add_simulation_arguments(parser: argparse.ArgumentParser) -> None:
    """``eventrec synth --simulate-experiment NAME`` and its options."""
    group = parser.add_argument_group(
        "experiment simulation",
        "send requests through serving for simulated users and publish their views, saves "
        "and bookings with planted propensities (eventrec.experiments.simulate)",
    )
    group.add_argument(
        "--simulate-experiment", metavar="NAME", help="the running experiment to simulate"
    )
    group.add_argument(
        "--serving-url",
        default=None,
        help="serving's base URL (default: http://EVENTREC_HTTP_HOST:EVENTREC_HTTP_PORT)",
    )
    group.add_argument(
        "--simulate-users", type=int, default=2000, help="simulated users (default: 2000)"
    )
    group.add_argument(
        "--simulate-requests", type=int, default=3, help="requests per user (default: 3)"
    )


def simulate(args: argparse.Namespace, settings: Settings) -> int:
    from eventrec.experiments.simulate import simulate_experiment

    url = args.serving_url or f"http://{settings.http_host}:{settings.http_port}"
    result = simulate_experiment(
        settings,
        args.simulate_experiment,
        url,
        users=args.simulate_users,
        requests_per_user=args.simulate_requests,
        seed=args.seed,
    )
    print(json.dumps(result.as_dict(), indent=2))
    print(f"then: eventrec experiment report {args.simulate_experiment}")
    return 0


def register(commands: Any) -> None:
    """Add ``experiment`` to ``eventrec``'s sub-parsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "experiment",
        help="create, list, show, stop or report A/B experiments",
        description="Users are assigned by a hash of (experiment, user) and keep their variant; "
        "users outside every running experiment get the current model.",
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    create = actions.add_parser(
        "create",
        help="start an experiment",
        description="Example: eventrec experiment create ranker --variant control:model=current "
        "--variant b:model=v000012 --split 50/50",
    )
    create.add_argument("name", help="letters, digits, _ . - (names are never reused)")
    create.add_argument(
        "--variant",
        action="append",
        required=True,
        metavar="NAME:SETTINGS",
        help="NAME:model=VERSION|current[,strategy=default|trending][,hybrid=on|off]; "
        "hybrid=off serves the version's collaborative scores without the blend; the first "
        "is the control (at least two; model=current is resolved to a fixed version now)",
    )
    create.add_argument("--split", help="shares per variant, e.g. 50/50 (default: equal)")
    create.add_argument(
        "--traffic", type=float, default=100.0, help="percent of all users in it (default: 100)"
    )
    create.add_argument(
        "--metric",
        choices=["view", "save", "booking"],
        default="booking",
        help="the outcome the verdict is about (default: booking)",
    )
    for name, text in (
        ("list", "every experiment"),
        ("show", "one experiment's definition"),
        ("stop", "stop assigning users; the counts stay"),
        ("report", "per-variant rates with 95 %% intervals and a verdict"),
    ):
        action = actions.add_parser(name, help=text)
        if name != "list":
            action.add_argument("name")
        if name == "report":
            action.add_argument("--json", action="store_true", help="the report as JSON")
    parser.set_defaults(handler=_experiment, json_logs=False)
