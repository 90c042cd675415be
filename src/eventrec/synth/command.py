"""`eventrec synth`: generate a synthetic platform, write it to files and/or publish it."""

from __future__ import annotations

import argparse
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from eventrec.config import Settings
from eventrec.synth.config import SynthConfig


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


def register(commands: Any) -> argparse.ArgumentParser:
    """Add the ``synth`` subcommand to ``eventrec``'s sub-parsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "synth",
        help="generate a synthetic platform (events, users, interactions); write and/or publish it",
        description="Generate a synthetic event platform: a catalogue of upcoming events, "
        "users with profiles and tastes, and their interactions (views, saves, bookings, "
        "ratings, searches, dismissals) over time. Write it to files (--out), publish it to "
        "the Kafka topics of the settings (--publish), or both.",
    )
    parser.add_argument(
        "--users", type=int, default=30_000, help="number of users (default: %(default)s)"
    )
    parser.add_argument(
        "--events", type=int, default=3_000, help="number of events (default: %(default)s)"
    )
    parser.add_argument(
        "--interactions",
        type=int,
        default=1_000_000,
        help="number of interactions (default: %(default)s)",
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=42,
        help="random seed: same seed, same data (default: %(default)s)",
    )
    parser.add_argument(
        "--now",
        type=_aware,
        default=None,
        help="the platform's 'now', ISO 8601 with zone (default: this hour, UTC)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="write events/users/interactions .jsonl and interactions.csv into DIR",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="publish everything to the Kafka topics (EVENTREC_KAFKA_BOOTSTRAP_SERVERS)",
    )
    parser.add_argument(
        "--rate",
        type=_positive_rate,
        default=None,
        help="cap publishing at this many msg/s (default: no cap)",
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
        f"{len(platform.interactions):,} interactions (seed {config.seed}, now "
        f"{config.now.isoformat()}) in {time.monotonic() - started:.1f}s"
    )
    if args.out is not None:
        written = platform.write_jsonl(args.out)
        written["csv"] = platform.write_csv(args.out / "interactions.csv")
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
