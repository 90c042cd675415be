"""The dead-letter envelope: the failed message, unchanged, with why and where in headers."""

from __future__ import annotations

from datetime import UTC, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict

HEADER_PREFIX = "eventrec."
# Kafka's record and batch framing around a dead letter's key, value and headers, at most.
FRAMING_BYTES = 512


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
    original_size: int | None = None  # set on a truncated copy: key and value bytes received

    @property
    def truncated(self) -> bool:
        return self.original_size is not None

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
        if self.original_size is not None:
            fields["original_size"] = str(self.original_size)
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
            original_size=int(found["original_size"]) if "original_size" in found else None,
        )

    def size(self) -> int:
        """Bytes this dead letter takes in a produce request, framing included (an upper bound)."""
        headers = sum(len(name) + len(raw) + 10 for name, raw in self.headers())
        return len(self.key or b"") + len(self.value or b"") + headers + FRAMING_BYTES

    def fitting(self, max_bytes: int) -> DeadLetter:
        """This dead letter, or a copy cut to ``max_bytes`` with the original size in headers.

        The value is cut first, then the key; the reason and coordinates are kept whole.
        """
        if self.size() <= max_bytes:
            return self
        key, value = self.key or b"", self.value or b""
        marked = self.model_copy(update={"original_size": len(key) + len(value)})
        room = max_bytes - (marked.size() - len(key) - len(value))
        if room < 0:
            raise ValueError(f"{max_bytes} bytes cannot hold this dead letter's headers")
        kept_key = key[:room]
        kept_value = value[: room - len(kept_key)]
        return marked.model_copy(
            update={
                "key": kept_key if self.key is not None else None,
                "value": kept_value if self.value is not None else None,
            }
        )
