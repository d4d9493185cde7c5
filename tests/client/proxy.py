"""An HTTP proxy in front of the live gateway that can lose answers: it forwards a request and
drops the gateway's response (the connection closes with no answer, as when a network fails
after the write), or answers in the gateway's place (a 429 or a 503) without forwarding."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx

_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Seen:
    method: str
    path: str
    idempotency_key: str | None
    authorization: str | None


@dataclass
class Fault:
    """For the next `times` requests matching `method` and `path`: drop the gateway's answer
    (`status` None) or answer `status` with `headers` instead of forwarding."""

    method: str
    path: str
    times: int = 1
    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    kind: str | None = None  # the problem's type; by default the status's generic one


class LossyProxy:
    def __init__(self, target: str):
        self.target = target
        self.seen: list[Seen] = []
        self.faults: list[Fault] = []
        self._lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def inject(self, fault: Fault) -> None:
        with self._lock:
            self.faults.append(fault)

    def requests(self, method: str, path: str) -> list[Seen]:
        return [seen for seen in self.seen if (seen.method, seen.path) == (method, path)]

    def _take_fault(self, method: str, path: str) -> Fault | None:
        with self._lock:
            for fault in self.faults:
                if (fault.method, fault.path) == (method, path.split("?")[0]) and fault.times:
                    fault.times -= 1
                    return fault
        return None

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def _relay(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                proxy.seen.append(Seen(self.command, self.path.split("?")[0],
                                       self.headers.get("Idempotency-Key"),
                                       self.headers.get("Authorization")))
                fault = proxy._take_fault(self.command, self.path)
                if fault is not None and fault.status is not None:
                    kind = fault.kind or {429: "rate-limited",
                                          503: "service-unavailable"}[fault.status]
                    self._answer(fault.status, fault.headers, json.dumps({
                        "type": f"urn:pgw:problem:{kind}", "title": "injected",
                        "status": fault.status}).encode())
                    return
                headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
                answer = httpx.request(self.command, proxy.target + self.path, headers=headers,
                                       content=body, timeout=60)
                if fault is not None:  # the write happened; its answer is lost
                    self.close_connection = True
                    return
                self._answer(answer.status_code, {
                    k: v for k, v in answer.headers.items() if k.lower() not in _HOP},
                    answer.content)

            def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_DELETE = _relay  # noqa: N815 - http.server API

            def log_message(self, *args: Any) -> None:
                pass

        return Handler


@contextmanager
def lossy_proxy(target: str) -> Iterator[LossyProxy]:
    proxy = LossyProxy(target)
    thread = threading.Thread(target=proxy.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.server.shutdown()
        proxy.server.server_close()
