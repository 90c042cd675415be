"""`eventrec dlq list|replay`: what was dead-lettered, and replaying it once the cause is fixed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from eventrec.client import Producer
from eventrec.config import Settings
from eventrec.dlq.read import Filters, ReadCounts, Summary, read_dead_letters
from eventrec.dlq.replay import replay_dead_letters

SHOWN_VALUE = 120


def _filters(args: argparse.Namespace) -> Filters:
    return Filters.of(args.reason, args.since, args.topic)


def _list(args: argparse.Namespace, settings: Settings) -> int:
    counts = ReadCounts()
    summary = Summary()
    for stored in read_dead_letters(settings, _filters(args), counts):
        assert stored.letter is not None
        summary.add(stored.letter)
        if counts.matched <= args.show:
            letter = stored.letter
            value = (letter.value or b"").decode("utf-8", errors="replace")[:SHOWN_VALUE]
            print(
                f"{stored.where}  {letter.failed_at.isoformat()}  "
                f"{letter.topic}/{letter.partition}/{letter.offset}  {letter.reason}\n    {value}"
            )
    print(
        f"{counts.matched:,} dead letters match in {settings.topic_dlq} "
        f"({counts.read:,} read, {counts.unreadable:,} not written by eventrec)"
    )
    groups = summary.groups()
    if groups:
        print(f"{'count':>8}  {'source topic':<20} {'first failed':<25} {'last failed':<25} reason")
    for group in groups:
        print(
            f"{group.count:>8,}  {group.topic:<20} {group.first.isoformat(timespec='seconds'):<25} "
            f"{group.last.isoformat(timespec='seconds'):<25} {group.reason}"
        )
    return 0


def _replay(args: argparse.Namespace, settings: Settings) -> int:
    with Producer(settings, client_id="eventrec-dlq-replay") as producer:
        summary = replay_dead_letters(
            settings,
            _filters(args),
            producer,
            force=args.force,
            dry_run=args.dry_run,
            progress_stream=sys.stderr if sys.stderr.isatty() or args.progress else None,
        )
    print(summary.report())
    return 1 if summary.refused else 0


def register(commands: Any) -> argparse.ArgumentParser:
    """Add the ``dlq`` subcommand (``list``, ``replay``) to ``eventrec``'s sub-parsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "dlq", help="summarise the dead-letter topic, or replay dead letters once fixed"
    )
    actions = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
    listing = actions.add_parser("list", help="dead letters by reason, source topic and time")
    replay = actions.add_parser(
        "replay", help="re-publish dead letters' original key and value to their original topic"
    )
    for sub in (listing, replay):
        sub.add_argument("--reason", metavar="PATTERN", help="reason matches this regex")
        sub.add_argument(
            "--since", metavar="TIME", help="failed since: ISO 8601 with a zone, or 90m, 2h, 7d"
        )
        sub.add_argument("--topic", help="source topic (the one the message was read from)")
    listing.add_argument(
        "--show", type=int, default=0, metavar="N", help="also print the first N dead letters"
    )
    listing.set_defaults(handler=_list, json_logs=False)
    replay.add_argument(
        "--force",
        action="store_true",
        help="also replay what is outside the de-duplication window, and catalog/profile messages",
    )
    replay.add_argument("--dry-run", action="store_true", help="check and count; send nothing")
    replay.add_argument(
        "--progress", action="store_true", help="show the progress bar even when not a terminal"
    )
    replay.set_defaults(handler=_replay, json_logs=False)
    return parser
