"""Short scans that arrive together go through the engine as one batch.

Several request threads of one process scanning short texts at once (the notes of concurrent
record writes) each took the model's lock by turns and paid spaCy's and Presidio's per-call cost
alone; one `analyze_batch` over their texts costs less per text, and gives each text the same
findings (`analyze_batch` reads each text in windows of its own).

No scan waits for a timer: a scan that finds no batch running runs at once, as the leader of a
batch of whatever is queued (itself, at least). Scans that arrive while a batch runs queue up;
when it ends, the first of them leads the next batch, which takes the queued scans with the
same entities and threshold, in order, up to MAX_TEXTS and MAX_BATCH_CHARS: about one group of
windows, what a scan waited for before when another held spaCy's lock. So under no concurrency
a scan costs what it did, and under concurrency it waits for at most the batch before its own.

Each scan keeps its own time limit, counted from its arrival: a scan still queued when its limit
passes leaves the queue with ScanTimeout; a batch is limited by the earliest limit of its
members, and if it runs out, a member that still has time is scanned again alone, on its own
thread, within what it has left. An error of the engine reaches every member of the batch.
Long texts (over MAX_CHARS, one window) are scanned alone as before: they are read a group of
windows at a time and never hold up a batch of short ones.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.pii.deadline import Deadline, ScanTimeout
from app.pii.engine import DEFAULT_THRESHOLD, NLP_GROUP, Finding, PiiEngine
from app.pii.windows import WINDOW

MAX_CHARS = WINDOW  # longer texts are scanned alone
MAX_TEXTS = 16
MAX_BATCH_CHARS = WINDOW * NLP_GROUP  # one group of windows under spaCy's lock

Key = tuple[tuple[str, ...] | None, float]


@dataclass(eq=False)
class _Ask:
    text: str
    language: str
    key: Key
    deadline: Deadline
    answered: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # this scan's thread runs the next batch
    taken: bool = False  # in a running batch
    result: tuple[str, list[Finding]] | None = None
    error: BaseException | None = None
    alone: bool = False  # its batch ran out of time; scan it again by itself

    def limit(self) -> float | None:
        return None if self.deadline.seconds is None else self.deadline.remaining()


class Coalescer:
    def __init__(self, engine: PiiEngine, *, max_chars: int = MAX_CHARS,
                 max_texts: int = MAX_TEXTS, max_chars_batch: int = MAX_BATCH_CHARS):
        self.engine = engine
        self.max_chars, self.max_texts = max_chars, max_texts
        self.max_chars_batch = max_chars_batch
        self._lock = threading.Lock()
        self._queue: list[_Ask] = []
        self._running = False
        self.batches = 0  # batches run, and texts in them (for tests and the benchmark)
        self.texts = 0

    def scan(self, text: str, *, language: str = "auto",
             entities: Sequence[str] | None = None, threshold: float = DEFAULT_THRESHOLD,
             time_limit: float | None = None) -> tuple[str, list[Finding]]:
        """What `PiiEngine.analyze` answers for this text, batched with concurrent scans."""
        if len(text) > self.max_chars:
            return self.engine.analyze(text, language=language, entities=entities,
                                       threshold=threshold, time_limit=time_limit)
        ask = _Ask(text, language, (tuple(sorted(entities)) if entities else None, threshold),
                   Deadline(time_limit))
        with self._lock:
            self._queue.append(ask)
            if not self._running:
                self._running = ask.leads = True
        if not ask.leads:
            self._wait(ask)
        if ask.leads:
            self._lead()
        if ask.error is not None:
            raise ask.error
        if ask.alone:
            return self.engine.analyze(text, language=language, entities=entities,
                                       threshold=threshold, time_limit=ask.limit())
        if ask.result is None:
            raise RuntimeError("a batched PII scan ended without a result")
        return ask.result

    def _wait(self, ask: _Ask) -> None:
        """Until the ask is answered or leads the next batch; ScanTimeout if its time runs out
        while it is still queued (a batch that took it answers it, in time or not: the batch
        is limited by its members' earliest limit)."""
        limited = ask.deadline.seconds is not None
        while not ask.answered.wait(ask.deadline.remaining() if limited else None):
            with self._lock:
                if not (ask.leads or ask.taken):
                    self._queue.remove(ask)
                    raise ScanTimeout(ask.deadline.seconds or 0)
            ask.answered.wait()

    def _lead(self) -> None:
        """Run one batch from the head of the queue (this thread's own scan is at its head),
        then hand the turn to the next queued scan, if any."""
        batch: list[_Ask] = []
        try:
            with self._lock:
                first, chars = self._queue[0], 0
                for ask in self._queue:
                    if ask.key != first.key:
                        continue
                    if batch and (len(batch) == self.max_texts
                                  or chars + len(ask.text) > self.max_chars_batch):
                        break
                    batch.append(ask)
                    chars += len(ask.text)
                for ask in batch:
                    self._queue.remove(ask)
                    ask.taken = True
            self._run([a for a in batch if not self._expired(a)])
        finally:
            with self._lock:
                if self._queue:
                    nxt = self._queue[0]
                    nxt.leads = True
                    nxt.answered.set()
                else:
                    self._running = False
            for ask in batch:
                ask.answered.set()

    @staticmethod
    def _expired(ask: _Ask) -> bool:
        if ask.deadline.seconds is not None and ask.deadline.remaining() <= 0:
            ask.error = ScanTimeout(ask.deadline.seconds)
            return True
        return False

    def _run(self, batch: list[_Ask]) -> None:
        if not batch:
            return
        limits = [limit for a in batch if (limit := a.limit()) is not None]
        entities, threshold = batch[0].key
        try:
            results = self.engine.analyze_batch(
                [a.text for a in batch], languages=[a.language for a in batch],
                entities=entities, threshold=threshold,
                time_limit=min(limits) if limits else None)
        except ScanTimeout:
            for ask in batch:
                if not self._expired(ask):
                    ask.alone = True
            return
        except BaseException as exc:  # the engine failed: every member fails alike
            for ask in batch:
                ask.error = exc
            raise
        finally:
            self.batches += 1
            self.texts += len(batch)
        for ask, result in zip(batch, results, strict=True):
            ask.result = result
