"""Outcomes of a request that are not the client's fault."""

from __future__ import annotations


class Unavailable(Exception):  # noqa: N818 - an HTTP outcome, not an error class of the domain
    """Answered 503 with Retry-After: Redis down, or nothing loaded yet."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
