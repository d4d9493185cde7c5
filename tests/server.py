"""A real uvicorn on a loopback port, for tests whose behaviour depends on HTTP."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import httpx
import uvicorn
from fastapi import FastAPI


class LiveServer:
    def __init__(self, app: FastAPI):
        self.app = app
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, log_config=None, lifespan="on", access_log=False)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive():
                raise RuntimeError("the server failed to start (see the log above)")
            if time.monotonic() > deadline:
                raise TimeoutError("the server did not start within 30 s")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=30)


def metric(server: LiveServer, name: str, **labels: str) -> float:
    """A sample of the server's /metrics, 0 when absent."""
    text = server.client().get("/metrics").text
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in text.splitlines():
        found = re.fullmatch(r"([a-z_]+)(?:\{(.*)\})? (\S+)", line)
        if found and found[1] == name and ",".join(sorted((found[2] or "").split(","))) \
                == wanted:
            return float(found[3])
    return 0.0


Found = TypeVar("Found")


def wait_for(check: Callable[[], Found | None], *, timeout: float = 30, what: str = "the condition",
             every: float = 0.05) -> Found:
    """Poll `check` until it gives a true value (returned), failing after `timeout` seconds:
    for waiting on another process or thread, whose progress no injected clock can drive."""
    deadline = time.monotonic() + timeout
    while not (found := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} did not happen within {timeout} s")
        time.sleep(every)
    return found


class ManualClock:
    """A monotonic clock for components that take one (`Keyring`, `RateLimiter`, the JWKS
    cache): time moves only when the test says so."""

    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until_up(process: subprocess.Popen[bytes], url: str, *, timeout: float = 90) -> None:
    """Poll `url` until it answers 200, failing early if the server process has died."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"server exited with {process.returncode}: {output[-2000:]}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{url} did not answer 200 within {timeout} s")
        time.sleep(0.2)

# The command-line entry point installed beside the interpreter running the tests (no PATH).
PGW = str(Path(sys.executable).with_name("pgw"))


@contextmanager
def pgw_serve(env: dict[str, str], workers: int) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """`pgw serve --workers N` on a free loopback port, up: (the process, its base URL)."""
    port = free_port()
    server = subprocess.Popen([PGW, "serve", "--port", str(port), "--workers", str(workers)],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, f"{base}/healthz")
        yield server, base
    finally:
        server.terminate()
        server.wait(timeout=30)
