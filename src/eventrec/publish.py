"""`eventrec publish FILE.jsonl --topic …`: an operator's file of messages, checked, to Kafka.

Each line is one message's JSON value, sent byte for byte when the consumer would accept
it and keyed by its id; a line the consumer would dead-letter is refused with the reason
and not sent. Blank lines are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from eventrec.client import TOPIC_KINDS, Producer, TopicKind
from eventrec.config import Settings
from eventrec.errors import EventrecError, InvalidMessageError
from eventrec.progress import Progress

FLUSH_EVERY = 10_000
SHOWN_EXAMPLES = 3


@dataclass
class Refusal:
    line: int
    reason: str


@dataclass
class PublishSummary:
    topic: str
    lines: int = 0
    sent: int = 0
    refusals: list[Refusal] = field(default_factory=list)

    def by_reason(self) -> Counter[str]:
        return Counter(refusal.reason for refusal in self.refusals)

    def report(self) -> str:
        text = [f"sent {self.sent:,} of {self.lines:,} messages to {self.topic}"]
        if self.refusals:
            text.append(f"refused {len(self.refusals):,} (the consumer would dead-letter them):")
            for reason, count in self.by_reason().most_common():
                lines = [r.line for r in self.refusals if r.reason == reason][:SHOWN_EXAMPLES]
                shown = ", ".join(map(str, lines)) + (", …" if count > SHOWN_EXAMPLES else "")
                text.append(f"  {count:>8,}  {reason}  (line {shown})")
        return "\n".join(text)


def topic_kind(settings: Settings, topic: str) -> TopicKind:
    """``interactions``, ``events`` or ``users``, by kind or by the configured topic name."""
    names: dict[str, TopicKind] = {
        settings.topic_interactions: "interactions",
        settings.topic_events: "events",
        settings.topic_users: "users",
    }
    for kind in TOPIC_KINDS:
        names.setdefault(kind, kind)
    if topic not in names:
        raise EventrecError(
            f"--topic {topic!r}: expected one of {', '.join(sorted(names))} "
            "(interactions, events or users, or their configured names)"
        )
    return names[topic]


def count_lines(path: Path) -> int:
    with path.open("rb") as source:
        return sum(1 for line in source if line.strip())


def publish_file(
    path: Path,
    kind: TopicKind,
    producer: Producer,
    *,
    progress_stream: TextIO | None = None,
    refusals_out: TextIO | None = None,
) -> PublishSummary:
    """Send every acceptable line of ``path`` to ``kind``'s topic; flushed when it returns.

    Raises :class:`eventrec.errors.DeliveryError` if Kafka did not acknowledge some of them.
    """
    summary = PublishSummary(topic=producer.topics[kind])
    bar = Progress(count_lines(path), progress_stream) if progress_stream is not None else None
    with path.open("rb") as source:
        for number, raw in enumerate(source, start=1):
            value = raw.strip()
            if not value:
                continue
            summary.lines += 1
            try:
                producer.send(kind, value)
            except InvalidMessageError as exc:
                summary.refusals.append(Refusal(number, exc.reason))
                if refusals_out is not None:
                    text = value.decode("utf-8", errors="replace")
                    row = {"line": number, "reason": exc.reason, "value": text}
                    refusals_out.write(json.dumps(row, ensure_ascii=False) + "\n")
            else:
                summary.sent += 1
                if summary.sent % FLUSH_EVERY == 0:
                    producer.flush()
            if bar is not None:
                bar.update(summary.lines, "publishing")
    if bar is not None:
        bar.update(summary.lines, "flushing", force=True)
    producer.flush()
    if bar is not None:
        bar.finish(summary.lines, "done")
    return summary


def handle(args: argparse.Namespace, settings: Settings) -> int:
    path: Path = args.file
    if not path.is_file():
        raise EventrecError(f"{path}: no such file")
    kind = topic_kind(settings, args.topic)
    refusals_out = args.refusals.open("w", encoding="utf-8") if args.refusals else None
    try:
        with Producer(settings, client_id="eventrec-publish") as producer:
            summary = publish_file(
                path,
                kind,
                producer,
                progress_stream=sys.stderr if sys.stderr.isatty() or args.progress else None,
                refusals_out=refusals_out,
            )
    finally:
        if refusals_out is not None:
            refusals_out.close()
    print(summary.report())
    return 1 if summary.refusals else 0


def register(commands: Any) -> argparse.ArgumentParser:
    """Add the ``publish`` subcommand to ``eventrec``'s sub-parsers."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "publish",
        help="publish a JSON-lines file to a topic, refusing what the consumer would dead-letter",
    )
    parser.add_argument("file", type=Path, metavar="FILE.jsonl", help="one JSON message a line")
    parser.add_argument(
        "--topic", required=True, help="interactions, events or users (or a configured name)"
    )
    parser.add_argument(
        "--refusals",
        type=Path,
        metavar="OUT.jsonl",
        help="write each refused line with its number and reason to OUT.jsonl",
    )
    parser.add_argument(
        "--progress", action="store_true", help="show the progress bar even when not a terminal"
    )
    parser.set_defaults(handler=handle, json_logs=False)
    return parser
