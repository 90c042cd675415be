"""Replaying dead letters: the original key and value, back to the original topic.

A dead letter is replayed when the consumer would now accept it (checked with its own
decoder before sending; one that is still invalid is counted, not sent back to the
dead-letter topic). Replays are idempotent while the consumer's de-duplication window
remembers them: an interaction dead-lettered within the window was applied, if at all,
by a replay within the window too, so a second copy is de-duplicated. Older ones are
refused unless forced. A catalog or profile message is a whole state of its entity, and
replaying an old one could undo a later update, so those are replayed only when forced.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TextIO

from eventrec.client import Producer, TopicKind, check
from eventrec.config import Settings
from eventrec.dlq.read import Filters, ReadCounts, read_dead_letters, reason_kind
from eventrec.errors import InvalidMessageError
from eventrec.progress import Progress
from eventrec.schemas.deadletter import HEADER_PREFIX, DeadLetter

REPLAY_OF = HEADER_PREFIX + "replay_of"
ORIGINAL = HEADER_PREFIX + "original"
FLUSH_EVERY = 5000

OUTSIDE_WINDOW = (
    "dead-lettered before the de-duplication window (EVENTREC_DEDUP_WINDOW_SECONDS): if it "
    "was replayed before, the consumer no longer remembers it and would count it twice; "
    "--force replays it anyway"
)
ENTITY_STATE = (
    "a catalog or profile message is a whole state of its entity; replaying an old one "
    "could undo a later update; --force replays it anyway"
)
TRUNCATED = "a truncated copy of a message too large to dead-letter whole: nothing to replay"
COPY = "the same message as a dead letter already replayed in this run"


@dataclass
class ReplaySummary:
    dry_run: bool = False
    replayed: int = 0
    still_invalid: Counter[str] = field(default_factory=Counter)
    skipped: Counter[str] = field(default_factory=Counter)
    counts: ReadCounts = field(default_factory=ReadCounts)

    @property
    def refused(self) -> int:
        """Dead letters left alone that ``--force`` would replay."""
        return self.skipped[OUTSIDE_WINDOW] + self.skipped[ENTITY_STATE]

    def report(self) -> str:
        verb = "would replay" if self.dry_run else "replayed"
        text = [
            f"{verb} {self.replayed:,}, still invalid {sum(self.still_invalid.values()):,}, "
            f"skipped {sum(self.skipped.values()):,} "
            f"(of {self.counts.matched:,} matching dead letters; {self.counts.read:,} read)"
        ]
        for reason, count in self.still_invalid.most_common():
            text.append(f"  still invalid {count:>8,}  {reason}")
        for why, count in self.skipped.most_common():
            text.append(f"  skipped       {count:>8,}  {why}")
        if self.counts.unreadable:
            text.append(
                f"  not dead letters eventrec wrote: {self.counts.unreadable:,} "
                f"(first: {'; '.join(self.counts.unreadable_examples)})"
            )
        return "\n".join(text)


def topic_kinds(settings: Settings) -> dict[str, TopicKind]:
    return {
        settings.topic_interactions: "interactions",
        settings.topic_events: "events",
        settings.topic_users: "users",
    }


def skip_reason(
    letter: DeadLetter, kind: TopicKind | None, settings: Settings, now: datetime, force: bool
) -> str | None:
    """Why ``letter`` is not replayed (before checking it), or None."""
    if kind is None:
        return f"source topic {letter.topic!r} is not one the consumer reads"
    if letter.truncated:
        return TRUNCATED
    if force:
        return None
    if kind != "interactions":
        return ENTITY_STATE
    if letter.failed_at < now - timedelta(seconds=settings.dedup_window_seconds):
        return OUTSIDE_WINDOW
    return None


def replay_dead_letters(
    settings: Settings,
    filters: Filters,
    producer: Producer,
    *,
    force: bool = False,
    dry_run: bool = False,
    progress_stream: TextIO | None = None,
    now: datetime | None = None,
) -> ReplaySummary:
    """Replay the matching dead letters; flushed (or :class:`DeliveryError`) when it returns."""
    now = now or datetime.now(UTC)
    kinds = topic_kinds(settings)
    summary = ReplaySummary(dry_run=dry_run)
    bar: Progress | None = None

    def on_total(total: int) -> None:
        nonlocal bar
        if progress_stream is not None:
            bar = Progress(total, progress_stream)

    def on_read(read: int) -> None:
        if bar is not None:
            bar.update(read, "replaying")

    sent: set[bytes] = set()
    for stored in read_dead_letters(
        settings, filters, summary.counts, on_total=on_total, on_read=on_read
    ):
        letter = stored.letter
        assert letter is not None
        kind = kinds.get(letter.topic)
        why = skip_reason(letter, kind, settings, now, force)
        if why is not None:
            summary.skipped[why] += 1
            continue
        assert kind is not None
        if letter.value is None:
            summary.still_invalid[reason_kind(letter.reason)] += 1
            continue
        identity = _identity(letter)
        if identity in sent:
            summary.skipped[COPY] += 1
            continue
        headers = [
            (REPLAY_OF, f"{settings.topic_dlq}/{stored.where}".encode()),
            (ORIGINAL, f"{letter.topic}/{letter.partition}/{letter.offset}".encode()),
        ]
        try:
            if dry_run:
                check(
                    kind,
                    letter.key,
                    letter.value,
                    producer.max_message_bytes,
                    latest=producer.latest(),
                )
            else:
                producer.send(kind, letter.value, key=letter.key, headers=headers)
        except InvalidMessageError as exc:
            summary.still_invalid[reason_kind(exc.reason)] += 1
            continue
        sent.add(identity)
        summary.replayed += 1
        if summary.replayed % FLUSH_EVERY == 0:
            producer.flush()
    if bar is not None:
        bar.update(summary.counts.read, "flushing", force=True)
    producer.flush()
    if bar is not None:
        bar.finish(summary.counts.read, "done")
    return summary


def _identity(letter: DeadLetter) -> bytes:
    digest = hashlib.blake2b(digest_size=16)
    for part in (letter.topic.encode(), letter.key or b"", letter.value or b""):
        digest.update(len(part).to_bytes(8, "little"))
        digest.update(part)
    return digest.digest()
