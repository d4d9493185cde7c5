"""Receivers on loopback ports that answer, redirect, stall or dribble, and a stand-in for DNS
and the network: names resolve from a table, and a connection anywhere but loopback is refused
and noted, so that no test reaches another machine whatever the code under test does."""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select

from app.config import Settings
from app.jobs import worker
from app.jobs.models import JobAttempt
from app.runtime import Runtime
from app.webhooks import outbox
from app.webhooks.events import Event

LOOPBACK = "127.0.0.1"


@dataclass
class Network:
    """`names[host]` lists the answers of successive lookups (the last one repeats)."""

    names: dict[str, list[list[str]]] = field(default_factory=dict)
    lookups: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)  # connections to anywhere but loopback
    lookup_seconds: float = 0.0  # how long a lookup in the table takes


@pytest.fixture
def network(monkeypatch: pytest.MonkeyPatch) -> Network:
    net = Network()
    real_getaddrinfo, real_connect = socket.getaddrinfo, socket.socket.connect

    def getaddrinfo(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        name = host.decode() if isinstance(host, bytes) else host
        if name in net.names:
            net.lookups.append(name)
            time.sleep(net.lookup_seconds)
            answers = net.names[name]
            addresses = answers.pop(0) if len(answers) > 1 else answers[0]
            return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM, 6,
                     "", (a, int(port), 0, 0) if ":" in a else (a, int(port)))
                    for a in addresses]
        try:
            if name is None or ipaddress.ip_address(name):  # a literal: no lookup
                return real_getaddrinfo(host, port, *args, **kwargs)
        except ValueError:
            pass
        net.lookups.append(str(name))
        raise socket.gaierror(socket.EAI_NONAME, "not in the test's table of names")

    def connect(sock: socket.socket, address: Any) -> None:
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            if not ipaddress.ip_address(address[0].split("%")[0]).is_loopback:
                net.refused.append(address[0])
                raise ConnectionRefusedError(f"the test refuses a connection to {address!r}")
        real_connect(sock, address)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    monkeypatch.setattr(socket.socket, "connect", connect)
    return net


class Receiver:
    """A webhook subscriber on a loopback port. `behaviour` decides the answer:
    "ok" (204), "redirect" (302 to `location`), "stall" (answers only when `release` is set,
    or after 30 s), "dribble" (a byte of the answer every 0.3 s, for `dribble_seconds`)."""

    def __init__(self, behaviour: str = "ok", location: str = "") -> None:
        self.behaviour, self.location = behaviour, location
        self.requests: list[tuple[str, dict[str, str], bytes]] = []
        self.arrived, self.release = threading.Event(), threading.Event()
        self.dribble_seconds = 6.0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.requests.append((self.path, {k.lower(): v for k, v in
                                                      self.headers.items()}, body))
                receiver.arrived.set()
                receiver.answer(self)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((LOOPBACK, 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://{LOOPBACK}:{self.port}/hooks"

    def answer(self, handler: BaseHTTPRequestHandler) -> None:
        if self.behaviour == "redirect":
            handler.send_response(302)
            handler.send_header("Location", self.location)
            handler.send_header("Content-Length", "0")
        elif self.behaviour == "stall":
            self.release.wait(30)
            handler.send_response(204)
        elif self.behaviour == "dribble":
            end = time.monotonic() + self.dribble_seconds
            for byte in b"HTTP/1.1 204 No Content\r\nX-Slow: " + b"a" * 1000:
                if time.monotonic() > end:
                    break
                handler.wfile.write(bytes([byte]))
                handler.wfile.flush()
                time.sleep(0.3)
            return
        else:
            handler.send_response(204)
        handler.end_headers()


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    started: list[Receiver] = []

    def start(behaviour: str = "ok", location: str = "") -> Receiver:
        receiver = Receiver(behaviour, location)
        threading.Thread(target=receiver.server.serve_forever, daemon=True).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.release.set()
        receiver.server.shutdown()
        receiver.server.server_close()


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(webhook_allow_hosts=(LOOPBACK,), job_retry_base_seconds=0.05)


def publish(runtime: Runtime, subject_id: str = "cust-1") -> str:
    """An erasure event for every subscriber, as the erasure job publishes it."""
    with runtime.transaction() as session:
        return outbox.publish(session, Event.SUBJECT_ERASED, {"subject_id": subject_id})


def deliver(runtime: Runtime) -> str | None:
    """Run one due job, as a worker does; its outcome (done, retry, failed) or None."""
    return worker.run_once(runtime, worker="test-worker")


def last_error(runtime: Runtime) -> str:
    with runtime.session_factory() as session:
        return session.scalars(select(JobAttempt.error).order_by(JobAttempt.id.desc())
                               .limit(1)).first() or ""
