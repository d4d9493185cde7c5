"""A second process that shares the model work of long scans, so one long scan uses two cores.

The models are most of the cost of a long text: spaCy's English NER (about 2 s of CPU per
100,000 characters of prose here) and the Chinese tagger (about 1.8 s). Neither can share a
process: two threads reading at once are slower than one (they hold the GIL for most of the
work). So each gateway process may start one helper (`python -m app.pii.scan_helper`) holding
its own copy of both models. When a scan has more text for a model than
`PGW_PII_PARALLEL_MIN_CHARS`, part of it goes to the helper while this process reads the rest
(what, and why: app.pii.sharing): English windows to be analysed whole ("analyze", answered
with their findings), or only the English model's entities ("ner"), or the Chinese model's
tags of sentences ("tag"). The helper runs the same engine code as this process, and this
process rebuilds the same findings, documents and words from its answers, so the findings
are the same as from one process.

The helper serves one scan at a time. When it is busy, not yet started, or has died, the scan
reads everything itself, as it would without a helper; a helper that dies or answers something
malformed is started again (at most `MAX_RESTARTS` times in `RESTART_WINDOW`), and one that
owes an answer and has sent nothing for `STUCK_SECONDS` is killed and replaced. The exchange
with it runs on a thread of its own, so a scan waits for it at most until its deadline; a scan
that gives up leaves the rest of the answer to that thread, which throws it away. The helper
(app.pii.scan_helper) exits when this process does: it reads its requests from a pipe that
closes with us.
"""

from __future__ import annotations

import collections
import json
import logging
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import Any, Literal

from app.pii.scan_answers import HelperFailed, checked

logger = logging.getLogger(__name__)

MAX_RESTARTS = 3  # starts after the first, in any RESTART_WINDOW: past that, read here until
RESTART_WINDOW = 3600.0  # the oldest of them is that old
RETRY_SECONDS = 60.0  # after a helper could not be started (no memory, no processes left)
READY_SECONDS = 120.0  # a helper that has not loaded its models by then is given up
STUCK_SECONDS = 60.0  # a helper that has sent nothing for this long while owing an answer
Kind = Literal["ner", "tag", "analyze"]


class ScanProcess:
    """One helper process with both models, used by one scan at a time.

    Every exchange with it (the request written, the answer read part by part) runs on a
    thread of its own, never on the scan's: a helper that stops reading or writing (stopped,
    swapped out, or sending half a message) cannot hold a scan past its deadline. The scan
    waits for each part of the answer on a queue, at most until its deadline.
    """

    def __init__(self, model: str, *, min_chars: int):
        self.model = model
        self.min_chars = min_chars
        self._lock = threading.Lock()  # held by an exchange from its request to its last part
        self._child: _Child | None = None
        self._closed = False
        # the helper that owes an answer, and when its exchange last heard from it
        self._owing: tuple[_Child, float] | None = None
        self.served = 0  # requests answered in full
        self._restarts = 0  # helpers started after the first, in all
        self._restarted: collections.deque[float] = collections.deque()  # when, the recent ones
        self._start_at: float | None = None  # when to try to start a helper again, if none runs
        try:
            self._start()
        except Exception as exc:  # noqa: BLE001 - the gateway serves without it meanwhile
            self._start_at = time.monotonic() + RETRY_SECONDS
            logger.error("PII scan helper process could not be started (%s); long texts are "
                         "read in this process until it is", type(exc).__name__)

    def wait_ready(self, timeout: float) -> bool:
        """Wait until the helper has loaded its models, at most `timeout` seconds; whether it
        has. False at once when none runs or it failed to start."""
        child = self._child
        return child is not None and child.settled.wait(timeout) and child.ready

    @property
    def refused(self) -> str | None:
        """Why the current helper will never be ready, if it will not."""
        child = self._child
        return child.refused if child is not None else None

    @property
    def pid(self) -> int | None:
        child = self._child
        return child.process.pid if child else None

    def _command(self, request_fd: int, answer_fd: int) -> list[str]:
        return [sys.executable, "-m", "app.pii.scan_helper", self.model,
                str(request_fd), str(answer_fd)]

    def _start(self) -> None:
        fds: list[int] = []
        try:
            fds += os.pipe()  # request_read, request_write
            fds += os.pipe()  # answer_read, answer_write
            process = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
                self._command(fds[0], fds[3]), pass_fds=(fds[0], fds[3]),
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, close_fds=True)
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        os.close(fds[0])
        os.close(fds[3])
        child = _Child(process, Connection(fds[1], readable=False),
                       Connection(fds[2], writable=False), time.monotonic())
        try:
            # its "ready" is awaited on a thread of its own: a helper that sends half of it
            # never holds a scan, nor the lock
            threading.Thread(target=_await_ready, args=(child,), daemon=True,
                             name="pii-scan-helper-start").start()
        except BaseException:
            process.kill()
            process.wait()
            child.requests.close()
            child.answers.close()
            raise
        self._child = child
        logger.info("PII scan helper process started", extra={"pid": process.pid})

    def _ready(self, child: _Child) -> bool:
        """Whether the helper has loaded its models (never waits); lock held."""
        if child.ready:
            return True
        if child.refused is not None:
            self._failed(child.refused)
        elif time.monotonic() - child.started_at > READY_SECONDS:
            self._failed("did not load its models in time")
        return False

    def _failed(self, why: str) -> None:
        """Stop the helper and start another at once, unless too many were started lately or
        this process is closing it; lock held."""
        self._stop()
        if self._closed:
            return
        logger.warning("PII scan helper process %s; stopped it", why)
        self._start_at = time.monotonic()
        self._restart()

    def _restart(self) -> None:
        """Start a helper if none runs and it is time to; lock held."""
        now = time.monotonic()
        if self._closed or self._child is not None or self._start_at is None \
                or now < self._start_at:
            return
        while self._restarted and now - self._restarted[0] > RESTART_WINDOW:
            self._restarted.popleft()
        if len(self._restarted) >= MAX_RESTARTS:
            self._start_at = self._restarted[0] + RESTART_WINDOW
            logger.error("PII scan helper process failed %d times after it was started again "
                         "within %.0f minutes; long texts are read in this process only for the "
                         "next %.0f minutes", MAX_RESTARTS, RESTART_WINDOW / 60,
                         (self._start_at - now) / 60)
            return
        try:
            self._start()
        except Exception as exc:  # noqa: BLE001 - no memory, no processes, no threads left:
            # tried again in a minute (a start that failed is not one that counts)
            self._start_at = now + RETRY_SECONDS
            logger.error("PII scan helper process could not be started again (%s); long texts "
                         "are read in this process until it is", type(exc).__name__)
            return
        self._restarted.append(now)
        self._restarts += 1
        self._start_at = None
        if self._closed:  # closed while it started: close() found no helper to stop
            self._stop()

    def submit(self, kind: Kind, texts: Sequence[str], *,
               windows: Sequence[tuple[int, int]] | None = None,
               entities: Sequence[str] | None = None, threshold: float = 0.0,
               types: frozenset[str] = frozenset()) -> Pending | None:
        """Send `texts` to the helper; None when it cannot take them now (read them here).

        "ner" answers each text's entities, "tag" each sentence's tags, "analyze" each English
        window's findings: `windows` then gives the part of each text the window owns, and
        `entities` and `threshold` are the scan's; a finding of any type outside `types` is an
        answer refused."""
        if not texts:
            return None
        if not self._lock.acquire(blocking=False):
            self._unstick()
            return None
        try:
            self._restart()
            child = self._child
            if child is None or not self._ready(child):
                self._lock.release()
                return None
            # a number the helper cannot guess, echoed in every part of its answer: a message
            # out of turn (a stray or repeated one) is never taken for this request's
            pending = Pending(secrets.randbits(52), kind, list(texts), windows=windows,
                              entities=entities, threshold=threshold, types=types)
            self._owing = (child, time.monotonic())
            threading.Thread(target=self._exchange, args=(child, pending), daemon=True,
                             name="pii-scan-helper-exchange").start()
        except Exception:  # no thread, say: this scan reads here, and the next may try again
            logger.exception("PII scan helper process could not be sent a scan")
            self._owing = None
            self._lock.release()
            return None
        return pending

    def _unstick(self) -> None:
        """Kill a helper that has owed an answer for STUCK_SECONDS without sending anything:
        its exchange then fails, and the helper is replaced. Only the helper that owes the
        answer, and only by the time its own exchange last heard from it: a helper that has
        been idle, or one just started, is never taken for stuck."""
        owing = self._owing
        if owing is not None and time.monotonic() - owing[1] > STUCK_SECONDS:
            logger.warning("PII scan helper process sent nothing for %.0f s; stopping it",
                           STUCK_SECONDS)
            owing[0].process.kill()

    def _exchange(self, child: _Child, pending: Pending) -> None:
        """Write one request and read its answer into `pending`; lock held, released here,
        before the last part is handed over (so the helper is free when the scan has it)."""
        locked = True
        try:
            child.requests.send_bytes(json.dumps(
                {"id": pending.id, "kind": pending.kind, "texts": pending.order,
                 **pending.options}).encode())
            received = 0
            while received < len(pending.order):
                part = json.loads(child.answers.recv_bytes())
                results = checked(pending, received, part)
                self._owing = (child, time.monotonic())  # it has made progress
                received += len(results)
                if received == len(pending.order):
                    self.served += 1
                    self._owing = None
                    if child is not self._child:  # closed meanwhile, unable to close these
                        child.requests.close()
                        child.answers.close()
                    locked = False
                    self._lock.release()
                pending.parts.put(results)
        except Exception as exc:  # noqa: BLE001 - whatever it was (a RecursionError from
            # nested JSON, say), the rest of this answer is still in the pipe: never read on
            pending.parts.put(None)
            if not locked:  # the answer was whole: nothing is owed, nothing to replace
                return
            self._owing = None
            if child is self._child:
                self._failed(str(exc) if isinstance(exc, HelperFailed)
                             else f"failed during an exchange ({type(exc).__name__})")
            else:  # closed meanwhile: its pipes are this thread's to close
                child.requests.close()
                child.answers.close()
        finally:
            if locked:
                self._lock.release()

    def _stop(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.process.kill()
            child.process.wait()
            child.requests.close()
            child.answers.close()

    def close(self) -> None:
        """Stop the helper for good (an exchange in flight fails; the scan reads here)."""
        self._closed = True
        self._child, child = None, self._child
        if child is not None:
            child.process.kill()  # the exchange thread, if any, sees the pipes close
            child.process.wait()
            if self._lock.acquire(blocking=False):
                child.requests.close()
                child.answers.close()
                self._lock.release()


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    requests: Connection
    answers: Connection
    started_at: float
    ready: bool = False  # it has loaded its models (set by _await_ready)
    refused: str | None = None  # why it will never be (set by _await_ready)
    settled: threading.Event = field(default_factory=threading.Event)  # either of those


def _await_ready(child: _Child) -> None:
    """Wait for a new helper's "ready", on a thread of its own. Nothing else reads its answers
    until it is ready; a helper that never finishes saying it is killed after READY_SECONDS,
    which ends this wait."""
    try:
        said = child.answers.recv_bytes(maxlength=16)
    except (EOFError, OSError):
        said = None
    if said == b"ready":
        child.ready = True
    else:
        child.refused = "exited before it was ready" if said is None else \
            "said something else than ready"
    child.settled.set()


class Pending:
    """Texts the helper is reading for one scan; its answer arrives a part at a time."""

    def __init__(self, request: int, kind: Kind, texts: list[str], *,
                 windows: Sequence[tuple[int, int]] | None = None,
                 entities: Sequence[str] | None = None, threshold: float = 0.0,
                 types: frozenset[str] = frozenset()):
        self.id = request
        self.kind = kind
        self.order = texts
        self.windows: list[tuple[int, int]] = [(int(a), int(b)) for a, b in windows or ()]
        self.types = types
        self.threshold = threshold
        self.options: dict[str, Any] = {}  # what the helper needs besides the texts
        # what an answer is looked up by: the text, or for a window its text and owned part
        # (app.pii.sharing.WindowKey)
        self.keys: list[Any] = texts
        if kind == "analyze":
            if len(self.windows) != len(texts):
                raise ValueError("every window text needs the part it owns")
            self.options = {"windows": self.windows, "entities": entities,
                            "threshold": threshold}
            self.keys = [(text, a, b) for text, (a, b) in zip(texts, self.windows, strict=True)]
        self.texts = frozenset(self.keys)
        self.parts: queue.SimpleQueue[list[Any] | None] = queue.SimpleQueue()
        self._results: dict[Any, Any] = {}
        self._received = 0
        self.failed = False  # the helper failed: read the rest here

    def get(self, texts: Sequence[Any], timeout: float) -> dict[Any, Any] | None:
        """The answers for `texts` (all sent in this request; for windows, their keys),
        waiting up to `timeout` seconds for them (TimeoutError past it); None if the helper
        failed (read them here)."""
        deadline = time.monotonic() + timeout
        while not self.failed and not all(text in self._results for text in texts):
            try:
                results = self.parts.get(timeout=max(deadline - time.monotonic(), 0))
            except queue.Empty:
                raise TimeoutError(f"no answer from the PII scan helper in {timeout:g} s") \
                    from None
            if results is None:
                self.failed = True
                break
            self._results.update(zip(self.keys[self._received:self._received + len(results)],
                                     results, strict=True))
            self._received += len(results)
        if self.failed:
            return None
        return {text: self._results[text] for text in texts}

    def received(self) -> dict[Any, Any]:
        """The answers taken so far (by `get`), by key: what a helper that then failed did
        answer."""
        return dict(self._results)

    def abandon(self) -> None:
        """The scan needs no more of the answer (it finished, failed or timed out): the
        exchange reads the rest and throws it away."""
