"""`pgw serve`: uvicorn, with one listening socket per worker process.

With `--workers N`, uvicorn binds one socket in the parent and every worker accepts from it:
whichever worker's event loop wakes first takes the connection, so one busy worker can end up
holding most of the long-lived (keep-alive) connections while another idles. Here each worker
binds a socket of its own to the same address with SO_REUSEPORT, and the kernel hashes each new
connection onto one of the listening sockets, so connections spread evenly over the workers.
uvicorn's supervisor is kept as it is (it restarts a worker that dies or hangs); only what it
hands each new worker changes: a `Listener`, which becomes a freshly bound socket when the
worker unpickles it. Linux puts only sockets of the same user in one SO_REUSEPORT group.
"""

from __future__ import annotations

import logging
import socket
import sys
from collections.abc import Callable
from typing import Any

import uvicorn
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from app.ops.metrics import forget_process

logger = logging.getLogger("pgw.serve")

STARTUP_SECONDS = 90  # a new worker's start: imports, the PII engine and its helper (at most 30)


class Listener:
    """An address that a worker binds for itself, sharing the port with the other workers."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, port

    def __reduce__(self) -> tuple[Any, tuple[str, int]]:
        return bind_shared, (self.host, self.port)


class Supervisor(Multiprocess):
    """uvicorn's supervisor, forgetting the live gauges of each worker it replaces or retires
    (a hung one killed, a dead one restarted, a restart, one fewer on SIGTTOU)."""

    def _forgetting(self, step: Callable[[], None]) -> None:
        before = {process.pid for process in self.processes}
        try:
            step()
        finally:
            for pid in before - {process.pid for process in self.processes}:
                if pid is not None:
                    forget_process(pid)

    def keep_subprocess_alive(self) -> None:
        self._forgetting(super().keep_subprocess_alive)

    def restart_all(self) -> None:
        """SIGHUP: each worker replaced once its replacement has started. uvicorn waits for that
        as long as for a health check (5 s); a worker loads its PII models and its scan helper's
        first (5-10 s), so every restart was given up. The longer wait is for this only: a hung
        worker is still found within the health check's time."""
        saved = self.config.timeout_worker_healthcheck
        self.config.timeout_worker_healthcheck = max(saved, STARTUP_SECONDS)
        try:
            self._forgetting(super().restart_all)
        finally:
            self.config.timeout_worker_healthcheck = saved

    def handle_ttou(self) -> None:
        self._forgetting(super().handle_ttou)


def bind_shared(host: str, port: int) -> socket.socket:
    """A socket bound to (host, port) with SO_REUSEPORT; uvicorn's server listens on it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        logger.error("cannot bind %s:%s: %s", host, port, exc)
        sys.exit(STARTUP_FAILURE)  # uvicorn's supervisor stops instead of restarting forever
    sock.set_inheritable(True)
    return sock


def serve(app: str, *, host: str, port: int, workers: int, **options: Any) -> None:
    """Run `app` in this process, or in `workers` processes with a listening socket each."""
    if workers <= 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(app, host=host, port=port, workers=workers, **options)
        return
    config = uvicorn.Config(app, host=host, port=port, workers=workers, **options)
    # Fail here, once, if the address cannot be had (a socket that is bound but does not listen
    # takes none of the workers' connections).
    bind_shared(host, port).close()
    logger.info("serving on %s:%s with %d workers, one socket each", host, port, workers)
    Supervisor(config, sockets=[Listener(host, port)]).run()  # type: ignore[list-item]
