"""A small SMTP receiver on a loopback port, so that tests send codes through the real SMTP
path (smtplib in app/privacy/delivery.py) and read what arrived."""

from __future__ import annotations

import asyncio
import re
import threading
import time
from email import message_from_bytes, policy
from email.message import EmailMessage


class Mailbox:
    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.port = 0

    def start(self) -> Mailbox:
        self._thread.start()
        if not self._ready.wait(10):
            raise TimeoutError("the SMTP receiver did not start")
        return self

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(
            asyncio.start_server(self._session, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()
        server.close()

    async def _session(self, reader: asyncio.StreamReader,
                       writer: asyncio.StreamWriter) -> None:
        async def say(line: str) -> None:
            writer.write(f"{line}\r\n".encode())
            await writer.drain()

        await say("220 mailbox.test ESMTP")
        while True:
            line = (await reader.readline()).decode().strip()
            verb = line[:4].upper()
            if not line or verb == "QUIT":
                await say("221 bye")
                break
            if verb in ("EHLO", "HELO"):
                await say("250 mailbox.test")
            elif verb == "DATA":
                await say("354 end with <CRLF>.<CRLF>")
                data = b""
                while not data.endswith(b"\r\n.\r\n"):
                    chunk = await reader.readline()
                    if not chunk:
                        return
                    data += chunk
                raw = data[:-5].replace(b"\r\n..", b"\r\n.")
                parsed = message_from_bytes(raw, policy=policy.default)
                with self._lock:
                    self.messages.append(parsed)
                await say("250 queued")
            else:  # MAIL, RCPT, RSET, NOOP
                await say("250 ok")
        writer.close()

    def to(self, address: str) -> list[EmailMessage]:
        with self._lock:
            return [m for m in self.messages if m["To"] == address]

    def wait_for_code(self, address: str, *, count: int = 1, timeout: float = 10) -> str:
        """The code in the `count`-th message to `address`, waiting for it to arrive."""
        deadline = time.monotonic() + timeout
        while len(self.to(address)) < count:
            if time.monotonic() > deadline:
                raise TimeoutError(f"no message {count} to {address} within {timeout} s")
            time.sleep(0.05)
        body = self.to(address)[count - 1].get_content()
        found = re.search(r"\b(\d{6})\b", body)
        assert found is not None, body
        return found.group(1)
