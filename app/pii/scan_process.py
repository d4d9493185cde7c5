"""A second process that shares the model work of long scans, so one long scan uses two cores.

The models are most of the cost of a long text: spaCy's English NER (about 2 s of CPU per
100,000 characters of prose here) and the Chinese tagger (about 1.8 s). Neither can share a
process: two threads reading at once are slower than one (they hold the GIL for most of the
work). So each gateway process may start one helper (`python -m app.pii.scan_process`) holding
its own copy of both models. When a scan has more text for a model than
`PGW_PII_PARALLEL_MIN_CHARS`, part of it goes to the helper while this process reads the rest:
for English, the later windows (the helper answers a few windows at a time, so this process
analyses them as they come), for Chinese, every other sentence. The helper answers with entity
offsets and labels, or tag numbers; this process rebuilds the same documents and words from
them, so the findings are the same as from one process.

The helper serves one scan at a time. When it is busy, not yet started, or has died, the scan
reads everything itself, as it would without a helper; a dead helper is started again (at most
`MAX_RESTARTS` times). A scan that gives up on its answer (its deadline passed) leaves the rest
of the answer to be thrown away by the next scan that uses the helper. The helper exits when
this process does: it reads its requests from a pipe that closes with us.
"""

from __future__ import annotations

import gc
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any, Literal

logger = logging.getLogger(__name__)

MAX_RESTARTS = 3
READY_SECONDS = 120.0  # a helper that has not loaded its models by then is given up
PART = {"ner": 4, "tag": 100_000}  # texts per message of an answer: English windows come back
# a few at a time, to be analysed while the helper reads on; Chinese sentences all at once
Kind = Literal["ner", "tag"]


class ScanProcess:
    """One helper process with both models, used by one scan at a time."""

    def __init__(self, model: str, *, min_chars: int):
        self.model = model
        self.min_chars = min_chars
        self._lock = threading.Lock()  # held from a request until its answer is read or dropped
        self._child: _Child | None = None
        self._stale = 0  # answers owed to scans that gave up on them
        self.served = 0  # requests answered in full
        self._restarts = 0
        self._start()

    @property
    def pid(self) -> int | None:
        return self._child.process.pid if self._child else None

    def _start(self) -> None:
        request_read, request_write = os.pipe()
        answer_read, answer_write = os.pipe()
        try:
            process = subprocess.Popen(  # noqa: S603 - this interpreter, our own module
                [sys.executable, "-m", "app.pii.scan_process", self.model,
                 str(request_read), str(answer_write)],
                pass_fds=(request_read, answer_write), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, close_fds=True)
        finally:
            os.close(request_read)
            os.close(answer_write)
        self._child = _Child(process, Connection(request_write, readable=False),
                             Connection(answer_read, writable=False), time.monotonic())
        self._stale = 0
        logger.info("PII scan helper process started", extra={"pid": process.pid})

    def _usable(self, child: _Child) -> bool:
        """Ready and owing no answer (reads what has arrived, never waits); lock held."""
        try:
            if not child.ready:
                if not child.answers.poll(0):
                    if time.monotonic() - child.started_at > READY_SECONDS:
                        self._failed("did not load its models in time")
                    return False
                child.answers.recv_bytes()
                child.ready = True
            while self._stale and child.answers.poll(0):
                if json.loads(child.answers.recv_bytes())["last"]:
                    self._stale -= 1
        except (EOFError, OSError, ValueError, KeyError, TypeError):
            self._failed("exited")
            return False
        return not self._stale

    def _failed(self, why: str) -> None:
        """Stop the helper and start another, unless it has failed too often; lock held."""
        self.close()
        if self._restarts >= MAX_RESTARTS:
            logger.error("PII scan helper process %s; long texts are read in this process only "
                         "from now on", why)
            return
        self._restarts += 1
        logger.warning("PII scan helper process %s; starting another", why)
        self._start()

    def submit(self, kind: Kind, texts: Sequence[str]) -> Pending | None:
        """Send `texts` to the helper; None when it cannot take them now (read them here)."""
        if not texts or not self._lock.acquire(blocking=False):
            return None
        try:
            child = self._child
            if child is None or not self._usable(child):
                self._lock.release()
                return None
            child.requests.send_bytes(json.dumps({"kind": kind, "texts": list(texts)}).encode())
        except (OSError, ValueError):
            self._failed("could not be written to")
            self._lock.release()
            return None
        return Pending(self, list(texts))

    def _receive(self, timeout: float) -> dict[str, Any] | None:
        """The next part of the answer in flight: None if the helper died, TimeoutError if none
        arrives within `timeout` seconds; lock held."""
        child = self._child
        if child is None:
            return None
        try:
            arrived = child.answers.poll(max(timeout, 0))
            part: dict[str, Any] = json.loads(child.answers.recv_bytes()) if arrived else {}
        except (EOFError, OSError, ValueError):
            self._failed("died while reading a text")
            return None
        if not arrived:
            raise TimeoutError(f"no answer from the PII scan helper in {timeout:g} s")
        return part

    def close(self) -> None:
        child, self._child = self._child, None
        if child is not None:
            child.requests.close()
            child.answers.close()
            child.process.kill()
            child.process.wait()


@dataclass
class _Child:
    process: subprocess.Popen[bytes]
    requests: Connection
    answers: Connection
    started_at: float
    ready: bool = False


class Pending:
    """Texts the helper is reading for one scan, answered a part at a time."""

    def __init__(self, owner: ScanProcess, texts: list[str]):
        self.owner = owner
        self.texts = frozenset(texts)
        self._order = texts
        self._results: dict[str, Any] = {}
        self._received = 0
        self._open = True  # holding the owner's lock, more parts to come
        self.failed = False  # the helper died: read the rest here

    def get(self, texts: Sequence[str], timeout: float) -> dict[str, Any] | None:
        """The answers for `texts` (all sent in this request), waiting up to `timeout` seconds
        for them (TimeoutError past it, and the rest of the answer is dropped); None if the
        helper died (read them here instead)."""
        deadline = time.monotonic() + timeout
        while self._open and not all(text in self._results for text in texts):
            try:
                part = self.owner._receive(deadline - time.monotonic())
            except TimeoutError:
                self.abandon()
                raise
            if part is None:
                self.failed, self._open = True, False
                self.owner._lock.release()
                break
            results = part["results"]
            self._results.update(zip(self._order[self._received:self._received + len(results)],
                                     results, strict=True))
            self._received += len(results)
            if part["last"]:
                self._open = False
                self.owner.served += 1
                self.owner._lock.release()
        if self.failed:
            return None
        return {text: self._results[text] for text in texts}

    def abandon(self) -> None:
        """Drop the rest of the answer (the scan failed or timed out): the next user reads it
        and throws it away."""
        if self._open:
            self._open = False
            self.owner._stale += 1
            self.owner._lock.release()


def _ner(model: str) -> Any:
    from app.pii.en_model import load_ner_pipeline

    nlp = load_ner_pipeline(model)

    def read(texts: list[str]) -> list[list[tuple[int, int, str]]]:
        return [[(e.start_char, e.end_char, e.label_) for e in doc.ents]
                for doc in nlp.pipe(texts, batch_size=PART["ner"])]
    return read


def serve(model: str, requests: Connection, answers: Connection) -> None:
    """The helper's loop: {"kind", "texts"} in; {"results", "last"} out, PART texts a time."""
    from app.pii.zh_model import tagger

    readers = {"ner": _ner(model),
               "tag": lambda texts: [tags.tolist() for tags in tagger().tag_sentences(texts)]}
    # the first call of each model allocates its buffers: pay for it before the first scan does
    readers["ner"](["Warm-up: John Smith called from London."])
    readers["tag"](["客户王芳来电。"])
    gc.collect()  # as a worker does (app.runtime.freeze_startup_heap, which would import the
    gc.freeze()  # whole app here): full collections then skip the models' objects
    answers.send_bytes(b"ready")
    while True:
        try:
            request = json.loads(requests.recv_bytes())
        except EOFError:
            return
        texts, read, part = request["texts"], readers[request["kind"]], PART[request["kind"]]
        try:
            for first in range(0, max(len(texts), 1), part):
                answers.send_bytes(json.dumps({"results": read(texts[first:first + part]),
                                               "last": first + part >= len(texts)}).encode())
        except OSError:  # the gateway process has gone
            return


if __name__ == "__main__":
    # Ctrl-C in a terminal reaches the whole process group: the gateway stops us, by closing
    # the pipe, once it has finished its own requests
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.basicConfig(stream=sys.stderr, level=logging.WARNING)
    serve(sys.argv[1], Connection(int(sys.argv[2]), writable=False),
          Connection(int(sys.argv[3]), readable=False))
