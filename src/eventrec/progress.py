"""A one-line text progress bar for long operator commands (publish, synth, dlq replay)."""

from __future__ import annotations

import sys
import time
from typing import TextIO

PROGRESS_INTERVAL_SECONDS = 0.5
BAR_WIDTH = 30


class Progress:
    """A one-line text progress bar on stderr: done/total, rate and time left."""

    def __init__(self, total: int, stream: TextIO | None = None) -> None:
        self._total = max(total, 1)
        self._stream = stream if stream is not None else sys.stderr
        self._started = time.monotonic()
        self._shown_at = 0.0

    def update(self, done: int, label: str, force: bool = False) -> None:
        clock = time.monotonic()
        if not force and clock - self._shown_at < PROGRESS_INTERVAL_SECONDS:
            return
        self._shown_at = clock
        elapsed = max(clock - self._started, 1e-9)
        rate = done / elapsed
        left = (self._total - done) / rate if rate > 0 else 0.0
        filled = int(BAR_WIDTH * done / self._total)
        bar = "#" * filled + "-" * (BAR_WIDTH - filled)
        self._stream.write(
            f"\r[{bar}] {done:,}/{self._total:,} {label:<12} {rate:,.0f} msg/s ETA {left:4.0f}s"
        )
        self._stream.flush()

    def finish(self, done: int, label: str) -> None:
        self.update(done, label, force=True)
        self._stream.write("\n")
        self._stream.flush()
