"""`eventrec synth`: generate a synthetic platform, write it to files and/or publish it."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventrec.config import Settings
from eventrec.synth.config import SynthConfig

_DEFAULTS = SynthConfig()


def _aware(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} needs a time zone, e.g. 2026-11-01T12:00Z")
    return moment


def _positive_rate(text: str) -> float:
    rate = float(text)
    if rate <= 0:
        raise argparse.ArgumentTypeError("must be a positive number of messages per second")
    return rate


def _share(text: str) -> float:
    share = float(text)
    if not 0.0 <= share <= 1.0:
        raise argparse.ArgumentTypeError("must be within [0, 1]")
    return share


# SynthConfig's fields of the same names (dashes for underscores): flag, parser, help.
_TASTE_OPTIONS: tuple[tuple[str, Callable[[str], Any], str], ...] = (
    (
        "--latent-share",
        _share,
        "share of a user's taste that is latent (performers, organizers, series, scenes) "
        "rather than category; 0 = category only, 1 = latent only",
    ),
    ("--history-days", int, "days of interactions before 'now'"),
    ("--horizon-days", int, "upcoming events start up to this many days after 'now'"),
    ("--past-event-share", float, "share of events that started before 'now' (0-0.9)"),
    (
        "--new-event-share",
        float,
        "share of upcoming events announced in the last three days (0-0.5)",
    ),
    (
        "--lead-days",
        float,
        "median days an event is on sale, from announcement to start (7-150)",
    ),
    (
        "--booking-days",
        float,
        "mean days before the start a booking is made: bookings crowd into the last days",
    ),
    ("--search-share", float, "share of interactions that are searches (0-0.5)"),
    ("--dismiss-share", float, "share of interactions that are dismissals (0-0.5)"),
)


def _field(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def register(commands: Any) -> argparse.ArgumentParser:
    """Add the ``synth`` subcommand to ``eventrec``'s sub-parsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "synth",
        help="generate a synthetic platform (events, users, interactions); write and/or publish it",
        description=(
            "Generate a synthetic event platform: users with planted tastes, events that are "
            "announced, on sale for weeks and then happen, and the interactions between them. "
            "A user's taste is partly visible (category, city, price) and partly latent "
            "(performers, organizers, series, scenes); --latent-share sets how much."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    size = parser.add_argument_group("size and randomness")
    size.add_argument("--users", type=int, default=30_000, help="number of users")
    size.add_argument("--events", type=int, default=3_000, help="number of events")
    size.add_argument("--interactions", type=int, default=1_000_000, help="number of interactions")
    size.add_argument("--seed", type=int, default=42, help="random seed (same seed, same data)")
    size.add_argument(
        "--now",
        type=_aware,
        default=None,
        help="the platform's 'now', ISO 8601 with zone; when unset, this hour (UTC)",
    )
    tastes = parser.add_argument_group("planted tastes and lifecycle")
    for flag, kind, text in _TASTE_OPTIONS:
        tastes.add_argument(flag, type=kind, default=getattr(_DEFAULTS, _field(flag)), help=text)
    output = parser.add_argument_group("output")
    output.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="write events/users/interactions .jsonl, interactions.csv and the planted "
        "truth (truth.npz, for the evaluation's oracle) into DIR",
    )
    output.add_argument(
        "--publish",
        action="store_true",
        help="publish everything to the Kafka topics (EVENTREC_KAFKA_BOOTSTRAP_SERVERS)",
    )
    output.add_argument(
        "--rate",
        type=_positive_rate,
        default=None,
        help="cap publishing at this many msg/s; when unset, as fast as the broker takes them",
    )
    from eventrec.experiments.command import add_simulation_arguments

    add_simulation_arguments(parser)
    parser.set_defaults(handler=handle, json_logs=False)
    return parser


def handle(args: argparse.Namespace, settings: Settings) -> int:
    from eventrec.synth.platform import generate

    if args.simulate_experiment:
        from eventrec.experiments.command import simulate

        return simulate(args, settings)

    now = args.now or datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    try:
        config = SynthConfig(
            n_users=args.users,
            n_events=args.events,
            n_interactions=args.interactions,
            seed=args.seed,
            now=now,
            **{_field(flag): getattr(args, _field(flag)) for flag, _, _ in _TASTE_OPTIONS},
        )
    except ValueError as exc:
        print(f"eventrec synth: {exc}", file=sys.stderr)
        return 2
    if args.out is None and not args.publish:
        print("eventrec synth: nothing to do; give --out DIR and/or --publish", file=sys.stderr)
        return 2

    started = time.monotonic()
    platform = generate(config)
    print(
        f"generated {len(platform.events):,} events, {len(platform.users):,} users, "
        f"{len(platform.interactions):,} interactions (seed {config.seed}, latent share "
        f"{config.latent_share}, now {config.now.isoformat()}) in {time.monotonic() - started:.1f}s"
    )
    if args.out is not None:
        written = platform.write_jsonl(args.out)
        written["csv"] = platform.write_csv(args.out / "interactions.csv")
        written["truth"] = platform.write_truth(args.out)
        for path in written.values():
            print(f"wrote {path}")
    if args.publish:
        from eventrec.synth.publish import publish

        counts = publish(platform, settings, rate=args.rate, progress=sys.stderr.isatty())
        print(
            f"published {counts.events:,} events to {settings.topic_events}, "
            f"{counts.users:,} users to {settings.topic_users}, {counts.interactions:,} "
            f"interactions to {settings.topic_interactions} in {counts.seconds:.1f}s "
            f"({counts.rate:,.0f} msg/s)"
        )
    return 0
