"""Dead letters count as sent only once Kafka acknowledged each one (no broker: futures)."""

from __future__ import annotations

from typing import Any

import pytest
from kafka.errors import KafkaTimeoutError, NotLeaderForPartitionError
from kafka.future import Future

from eventrec.consumer.delivery import Outgoing, deliver


class StopError(Exception):
    pass


class ScriptedProducer:
    """Each send's future resolves as the script says at the next flush: ok, fail or hang."""

    def __init__(self, script: list[str]) -> None:
        self.script = script
        self.sent: list[bytes | None] = []
        self.acknowledged: list[bytes | None] = []
        self._open: list[tuple[Future, str, bytes | None]] = []

    def send(
        self,
        topic: str,
        value: Any = None,
        key: Any = None,
        headers: Any = None,
        partition: Any = None,
    ) -> Future:
        outcome = self.script.pop(0)
        if outcome == "raise":
            raise KafkaTimeoutError("no metadata")
        future = Future()
        self.sent.append(value)
        self._open.append((future, outcome, value))
        return future

    def flush(self, timeout: float | None = None) -> None:
        still = []
        for future, outcome, value in self._open:
            if outcome == "ok":
                future.success(value)
                self.acknowledged.append(value)
            elif outcome == "fail":
                future.failure(NotLeaderForPartitionError("leader moved"))
            elif outcome == "hang":
                still.append((future, "ok", value))  # acknowledged at a later flush
        self._open = still
        if still:
            raise KafkaTimeoutError("flush timed out")


def letters(*values: bytes) -> list[Outgoing]:
    return [Outgoing("dlq", b"k", value, []) for value in values]


def test_every_letter_acknowledged_at_once() -> None:
    producer = ScriptedProducer(["ok", "ok"])
    failures: list[BaseException] = []
    assert deliver(producer, letters(b"a", b"b"), flush_timeout=1, on_failure=failures.append) == 0
    assert producer.acknowledged == [b"a", b"b"]
    assert failures == []


def test_a_failed_future_is_sent_again_and_only_it() -> None:
    producer = ScriptedProducer(["ok", "fail", "ok", "fail", "ok"])
    failures: list[BaseException] = []
    resent = deliver(
        producer, letters(b"a", b"b", b"c"), flush_timeout=1, on_failure=failures.append
    )
    assert resent == 2
    assert producer.sent == [b"a", b"b", b"c", b"b", b"b"]
    assert sorted(producer.acknowledged) == [b"a", b"b", b"c"]
    assert [type(f) for f in failures] == [NotLeaderForPartitionError] * 2


def test_one_still_in_flight_is_waited_for_not_duplicated() -> None:
    producer = ScriptedProducer(["hang", "ok"])
    failures: list[BaseException] = []
    assert deliver(producer, letters(b"a", b"b"), flush_timeout=1, on_failure=failures.append) == 0
    assert producer.sent == [b"a", b"b"]
    assert sorted(producer.acknowledged) == [b"a", b"b"]
    assert len(failures) == 1


def test_a_send_that_raises_is_retried() -> None:
    producer = ScriptedProducer(["raise", "ok"])
    failures: list[BaseException] = []
    assert deliver(producer, letters(b"a"), flush_timeout=1, on_failure=failures.append) == 1
    assert producer.acknowledged == [b"a"]
    assert isinstance(failures[0], KafkaTimeoutError)


def test_giving_up_raises_out_before_anything_counts_as_sent() -> None:
    producer = ScriptedProducer(["ok", "fail"])

    def stop(error: BaseException) -> None:
        raise StopError from error

    with pytest.raises(StopError):
        deliver(producer, letters(b"a", b"b"), flush_timeout=1, on_failure=stop)
    assert producer.acknowledged == [b"a"]
