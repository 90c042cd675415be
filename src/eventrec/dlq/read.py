"""Reading the dead-letter topic back, filtered, from its start (or a time) to its end."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from kafka import KafkaConsumer, TopicPartition

from eventrec.config import Settings
from eventrec.errors import EventrecError
from eventrec.schemas.deadletter import DeadLetter

_DURATION = re.compile(r"^(\d+(?:\.\d+)?)\s*([smhd])$")
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"\d+")


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """An ISO 8601 instant with a zone, or a duration back from now (``90m``, ``2h``, ``7d``)."""
    found = _DURATION.match(text.strip())
    if found:
        seconds = float(found.group(1)) * _UNITS[found.group(2)]
        return (now or datetime.now(UTC)) - timedelta(seconds=seconds)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise EventrecError(
            f"--since {text!r}: expected an ISO 8601 time with a zone "
            "(2026-11-30T08:00Z) or a duration such as 90m, 2h or 7d"
        ) from None
    if moment.tzinfo is None:
        raise EventrecError(f"--since {text!r}: needs a time zone, e.g. 2026-11-30T08:00Z")
    return moment


def reason_kind(reason: str) -> str:
    """A reason without its particulars (quoted values, numbers), to group dead letters by."""
    return _NUMBER.sub("N", _QUOTED.sub("'…'", reason))


@dataclass(frozen=True)
class Filters:
    """Which dead letters a command looks at; all of them when nothing is set."""

    reason: re.Pattern[str] | None = None
    since: datetime | None = None
    topic: str | None = None

    @classmethod
    def of(cls, reason: str | None, since: str | None, topic: str | None) -> Filters:
        pattern = None
        if reason is not None:
            try:
                pattern = re.compile(reason, re.IGNORECASE)
            except re.error as exc:
                raise EventrecError(
                    f"--reason {reason!r}: not a regular expression: {exc}"
                ) from None
        return cls(pattern, parse_since(since) if since else None, topic)

    def match(self, letter: DeadLetter) -> bool:
        return (
            (self.reason is None or self.reason.search(letter.reason) is not None)
            and (self.since is None or letter.failed_at >= self.since)
            and (self.topic is None or letter.topic == self.topic)
        )


@dataclass(frozen=True)
class Stored:
    """One message of the dead-letter topic: where it is, and the dead letter (None if the
    message is not one eventrec wrote: its headers are missing or broken)."""

    partition: int
    offset: int
    letter: DeadLetter | None
    problem: str = ""

    @property
    def where(self) -> str:
        return f"{self.partition}/{self.offset}"


@dataclass
class ReadCounts:
    read: int = 0
    matched: int = 0
    unreadable: int = 0
    unreadable_examples: list[str] = field(default_factory=list)


def read_dead_letters(
    settings: Settings,
    filters: Filters,
    counts: ReadCounts,
    *,
    on_total: Callable[[int], None] | None = None,
    on_read: Callable[[int], None] | None = None,
) -> Iterator[Stored]:
    """The matching dead letters, from the start of the topic (or ``filters.since``) to the
    end it had when reading began. Messages eventrec did not write are counted, not yielded."""
    topic = settings.topic_dlq
    consumer = KafkaConsumer(
        bootstrap_servers=settings.bootstrap_servers,
        client_id="eventrec-dlq",
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    try:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise EventrecError(
                f"no dead-letter topic {topic!r} (EVENTREC_TOPIC_DLQ); "
                "`eventrec topics create` creates it"
            )
        tps = [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        ends = {tp: int(offset) for tp, offset in consumer.end_offsets(tps).items()}
        starts = {tp: int(offset) for tp, offset in consumer.beginning_offsets(tps).items()}
        if filters.since is not None:
            # Dead letters are written when they fail, so a message's time bounds failed_at.
            found = consumer.offsets_for_times(
                {tp: int(filters.since.timestamp() * 1000) for tp in tps}
            )
            starts = {tp: ends[tp] if found[tp] is None else found[tp].offset for tp in tps}
        if on_total is not None:
            on_total(sum(max(0, ends[tp] - starts[tp]) for tp in tps))
        for tp in tps:
            consumer.seek(tp, starts[tp])
        remaining = {tp for tp in tps if starts[tp] < ends[tp]}
        while remaining:
            polled = consumer.poll(timeout_ms=1000, max_records=2000)
            for tp, records in polled.items():
                for record in records:
                    if record.offset >= ends[tp]:
                        break
                    counts.read += 1
                    stored = _stored(record.partition, record.offset, record)
                    if stored.letter is None:
                        counts.unreadable += 1
                        if len(counts.unreadable_examples) < 3:
                            counts.unreadable_examples.append(f"{stored.where}: {stored.problem}")
                    elif filters.match(stored.letter):
                        counts.matched += 1
                        yield stored
                if on_read is not None:
                    on_read(counts.read)
            for tp in list(remaining):
                if consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
    finally:
        consumer.close(autocommit=False)


def _stored(partition: int, offset: int, record: object) -> Stored:
    headers = list(getattr(record, "headers", None) or [])
    try:
        letter = DeadLetter.from_kafka(
            getattr(record, "key", None), getattr(record, "value", None), headers
        )
    except (KeyError, ValueError, UnicodeDecodeError) as exc:
        return Stored(partition, offset, None, f"not a dead letter eventrec wrote ({exc!r})")
    return Stored(partition, offset, letter)


@dataclass
class ReasonGroup:
    topic: str
    reason: str
    count: int
    first: datetime
    last: datetime


class Summary:
    """Dead letters counted by source topic and kind of reason, one at a time (a topic of
    dead letters can be larger than memory)."""

    def __init__(self) -> None:
        self._groups: dict[tuple[str, str], ReasonGroup] = {}

    def add(self, letter: DeadLetter) -> None:
        kind = reason_kind(letter.reason)
        group = self._groups.get((letter.topic, kind))
        if group is None:
            self._groups[(letter.topic, kind)] = ReasonGroup(
                letter.topic, kind, 1, letter.failed_at, letter.failed_at
            )
        else:
            group.count += 1
            group.first = min(group.first, letter.failed_at)
            group.last = max(group.last, letter.failed_at)

    def groups(self) -> list[ReasonGroup]:
        """The largest group first."""
        return sorted(self._groups.values(), key=lambda g: (-g.count, g.topic, g.reason))


def summarise(letters: Iterable[DeadLetter]) -> list[ReasonGroup]:
    summary = Summary()
    for letter in letters:
        summary.add(letter)
    return summary.groups()
