"""Prometheus metrics plumbing shared by every eventrec process.

A process that runs several Python processes (``eventrec serve --workers N``,
``EVENTREC_CONSUMER_PROCESSES``) keeps its metrics in prometheus-client's multiprocess
mode: each process writes its values to memory-mapped files in one directory, and the
process that answers ``/metrics`` adds them up. The mode is chosen when
``prometheus_client`` is first imported, so :func:`use_multiprocess_dir` must run before
any metric module is imported; the processes started afterwards inherit the directory
through the environment.

The metric definitions live beside the code they measure (``serving.metrics``,
``consumer.metrics``, ``trainer.metrics``); names follow Prometheus' conventions
(``eventrec_<process>_…``, ``_total`` for counters, base units such as ``_seconds``).
"""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from eventrec.errors import ConfigError

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# Latency buckets in seconds: serving answers in milliseconds, Redis steps in tens of them.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

_REASON_CLASS = re.compile(r"^([A-Za-z_][A-Za-z0-9_.]{0,40}):")


def use_multiprocess_dir() -> Path:
    """Put this process tree's metrics in multiprocess mode; returns the directory.

    A directory named by ``PROMETHEUS_MULTIPROC_DIR`` is used as it is (a supervisor
    chose it); otherwise a fresh one is created and removed when this process exits.
    """
    existing = os.environ.get(MULTIPROC_ENV)
    if existing:
        return Path(existing)
    if "prometheus_client" in sys.modules:
        raise ConfigError(
            "metrics: prometheus_client was imported before the multiprocess directory "
            "was chosen; call use_multiprocess_dir() first"
        )
    directory = Path(tempfile.mkdtemp(prefix="eventrec-metrics-"))
    os.environ[MULTIPROC_ENV] = str(directory)
    owner = os.getpid()

    def remove() -> None:
        if os.getpid() == owner:
            shutil.rmtree(directory, ignore_errors=True)

    atexit.register(remove)
    return directory


def metrics_registry() -> Any:
    """The registry ``/metrics`` exposes: every process's values in multiprocess mode."""
    from prometheus_client import REGISTRY, CollectorRegistry
    from prometheus_client.multiprocess import MultiProcessCollector

    directory = os.environ.get(MULTIPROC_ENV)
    if not directory:
        return REGISTRY
    registry = CollectorRegistry()
    # prometheus_client leaves these two functions unannotated; their types are these.
    collector = cast(Callable[..., object], MultiProcessCollector)
    collector(registry, path=directory)
    return registry


def process_exited(pid: int) -> None:
    """Forget a dead process's live gauges (its counters and histograms still count)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        mark_dead = cast(Callable[[int], None], multiprocess.mark_process_dead)
        mark_dead(pid)


class MetricsServer:
    """``/metrics`` on ``host:port`` in a background thread (the consumer's and trainer's)."""

    def __init__(self, host: str, port: int) -> None:
        from prometheus_client import start_http_server

        try:
            self._server, self._thread = start_http_server(
                port, addr=host, registry=metrics_registry()
            )
        except OSError as exc:
            raise ConfigError(f"cannot serve metrics on {host}:{port}: {exc.strerror}") from None
        self.port: int = self._server.server_port

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not threading.current_thread():
            self._thread.join(timeout=5)


@functools.cache
def _wire_fields() -> frozenset[str]:
    from eventrec.schemas import Budget, Event, Interaction, Price, UserProfile

    models = (Interaction, Event, UserProfile, Price, Budget)
    return frozenset(name for model in models for name in model.model_fields) | {"key", "value"}


def dead_letter_reason(reason: str) -> str:
    """A dead letter's reason as a bounded label: the wire field it names, or a class.

    Reasons read ``"rating: required for type 'rating'"``. The label is the field
    (``rating``), ``unknown_field`` for a field the schema does not have, or ``other``:
    never text a producer chose, so a metric's label set stays small.
    """
    if "Extra inputs are not permitted" in reason:
        return "unknown_field"
    match = _REASON_CLASS.match(reason)
    if match is None:
        return "other"
    field = match.group(1).split(".")[0]
    return field if field in _wire_fields() else "other"
