"""Several serving worker processes, each with a listening socket of its own.

uvicorn's own multi-worker mode shares one listening socket: whichever worker wakes first
accepts every connection waiting, so a client's pool of keep-alive connections often
lands on one worker (16 connections measured 16/0 and 12/4) while the other idles, and
that worker's latency multiplies. Here each worker gets its own socket bound to the same
port with ``SO_REUSEPORT``; the kernel spreads new connections across them.

The supervisor binds every socket itself (a port in use fails at once, with the address
in the message), starts one process per socket, restarts a worker that dies (waiting
longer after each quick death, never a tight loop; the dead worker's socket is closed
meanwhile so the kernel stops routing connections to it, and the replacement gets a new
one that it listens on once started), and on SIGTERM/SIGINT stops them all and exits 0.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Any

from eventrec.telemetry import process_exited

log = logging.getLogger("eventrec.serving")

# A worker that lived less than this is restarted after a growing pause.
QUICK_DEATH_SECONDS = 30.0
MAX_RESTART_PAUSE = 30.0
STOP_TIMEOUT = 30.0


def listening_socket(
    host: str, port: int, reuse_port: bool, backlog: int = 2048, listen: bool = True
) -> socket.socket:
    """A bound TCP socket, listening unless ``listen`` is false, whose accepted connections
    have TCP_NODELAY.

    Without TCP_NODELAY each small reply can wait on the client's delayed ACK (40 ms).
    A socket bound but not listening gets no connections: uvicorn starts listening once
    the app has started (loaded its model), so a replacement worker joins the port ready.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise OSError(exc.errno, f"cannot listen on {host}:{port}: {exc.strerror}") from None
    if listen:
        sock.listen(backlog)
    sock.set_inheritable(True)
    return sock


class _Worker:
    def __init__(self, index: int, sock: socket.socket) -> None:
        self.index = index
        self.sock: socket.socket | None = sock
        self.address: tuple[str, int] = sock.getsockname()[:2]
        self.process: BaseProcess | None = None
        self.started_at = 0.0
        self.quick_deaths = 0
        self.restart_at = 0.0


class Supervisor:
    """Runs ``target(sock)`` in one spawned process per socket until told to stop."""

    def __init__(
        self,
        sockets: list[socket.socket],
        target: Callable[[socket.socket], Any],
        poll_seconds: float = 0.5,
    ) -> None:
        self._context = multiprocessing.get_context("spawn")
        self._target = target
        self._workers = [_Worker(i, sock) for i, sock in enumerate(sockets)]
        self._stop = threading.Event()
        self._poll = poll_seconds
        self.restarts = 0

    def _start(self, worker: _Worker) -> None:
        if worker.sock is None:
            host, port = worker.address
            worker.sock = listening_socket(host, port, reuse_port=True, listen=False)
        process = self._context.Process(
            target=self._target, args=(worker.sock,), name=f"eventrec-serve-{worker.index}"
        )
        process.start()
        worker.process = process
        worker.started_at = time.monotonic()
        log.info("serving worker started", extra={"worker": worker.index, "pid": process.pid})

    def request_stop(self, *_: Any) -> None:
        self._stop.set()

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self.request_stop) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            for worker in self._workers:
                self._start(worker)
            while not self._stop.wait(self._poll):
                for worker in self._workers:
                    self._check(worker)
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            for worker in self._workers:
                if worker.sock is not None:
                    worker.sock.close()
        return 0

    def _check(self, worker: _Worker) -> None:
        process = worker.process
        now = time.monotonic()
        if process is not None and process.is_alive():
            return
        if process is not None:
            lived = now - worker.started_at
            worker.quick_deaths = worker.quick_deaths + 1 if lived < QUICK_DEATH_SECONDS else 0
            pause = (
                min(MAX_RESTART_PAUSE, 2.0 ** (worker.quick_deaths - 1))
                if worker.quick_deaths
                else 0.0
            )
            log.error(
                "serving worker exited with %s after %.0f s; restarting in %.0f s",
                process.exitcode,
                lived,
                pause,
                extra={"worker": worker.index, "pid": process.pid},
            )
            if process.pid is not None:
                process_exited(process.pid)  # its live gauges no longer count
            process.close()
            worker.process = None
            worker.restart_at = now + pause
            # A socket nobody accepts on still gets its share of new connections: close it,
            # the replacement binds a new one.
            if worker.sock is not None:
                worker.sock.close()
                worker.sock = None
        if now >= worker.restart_at:
            self.restarts += 1
            try:
                self._start(worker)
            except OSError as exc:
                log.error("cannot restart serving worker %d: %s", worker.index, exc)
                worker.restart_at = now + MAX_RESTART_PAUSE

    def _stop_all(self) -> None:
        running = [w.process for w in self._workers if w.process is not None]
        for process in running:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for process in running:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning(
                    "serving worker did not stop in time: killed", extra={"pid": process.pid}
                )
                process.kill()
                process.join()


def uvicorn_config() -> Any:
    """The uvicorn configuration of one serving process, from the environment's settings."""
    import uvicorn

    from eventrec.config import load_settings

    settings = load_settings()
    return uvicorn.Config(
        "eventrec.serving.app:create_app",
        factory=True,
        host=settings.http_host,
        port=settings.http_port,
        workers=1,
        log_level=settings.log_level.lower(),
        access_log=False,
    )


def run_worker(sock: socket.socket) -> None:
    """One serving process on ``sock`` (the target of every worker the supervisor starts)."""
    import uvicorn

    uvicorn.Server(uvicorn_config()).run(sockets=[sock])
