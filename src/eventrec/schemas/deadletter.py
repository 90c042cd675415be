"""The dead-letter envelope: the failed message, unchanged, with why and where in headers."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

HEADER_PREFIX = "eventrec."


class DeadLetter(BaseModel):
    """A message that failed validation, as published to the dead-letter topic."""

    model_config = ConfigDict(frozen=True)

    reason: str
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    failed_at: AwareDatetime

    @classmethod
    def of(
        cls,
        *,
        reason: str,
        topic: str,
        partition: int,
        offset: int,
        key: bytes | None,
        value: bytes | None,
    ) -> DeadLetter:
        return cls(
            reason=reason,
            topic=topic,
            partition=partition,
            offset=offset,
            key=key,
            value=value,
            failed_at=datetime.now(UTC),
        )

    def headers(self) -> list[tuple[str, bytes]]:
        """Kafka headers carrying the reason and the message's origin."""
        fields = {
            "reason": self.reason,
            "topic": self.topic,
            "partition": str(self.partition),
            "offset": str(self.offset),
            "failed_at": self.failed_at.isoformat(),
        }
        return [(HEADER_PREFIX + name, text.encode("utf-8")) for name, text in fields.items()]

    @classmethod
    def from_kafka(
        cls, key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]]
    ) -> DeadLetter:
        """Rebuild the envelope from a message read back from the dead-letter topic."""
        found = {
            name[len(HEADER_PREFIX) :]: raw.decode("utf-8")
            for name, raw in headers
            if name.startswith(HEADER_PREFIX)
        }
        return cls(
            reason=found["reason"],
            topic=found["topic"],
            partition=int(found["partition"]),
            offset=int(found["offset"]),
            key=key,
            value=value,
            failed_at=datetime.fromisoformat(found["failed_at"]),
        )
