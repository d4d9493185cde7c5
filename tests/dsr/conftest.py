from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from app.config import Settings


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    """The webhook receivers of these tests listen on loopback, which must be allowed."""
    return make_settings(webhook_allow_hosts=("127.0.0.1",))


class Receiver:
    """A webhook subscriber on a loopback port; `fail_next` answers 500 that many times."""

    def __init__(self) -> None:
        self.events: list[tuple[dict[str, str], dict[str, Any], bytes]] = []
        self.fail_next = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the http.server API
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if receiver.fail_next:
                    receiver.fail_next -= 1
                    self.send_response(500)
                else:
                    receiver.events.append(({k.lower(): v for k, v in self.headers.items()},
                                            json.loads(body), body))
                    self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.server.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()
