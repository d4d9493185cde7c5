"""Short English scans that arrive together go through the engine as one batch.

Several request threads of one process scanning short texts at once (the notes of concurrent
record writes) each took spaCy's lock by turns and paid spaCy's and Presidio's per-call cost
alone; one `analyze_batch` over their texts costs less per text, and gives each text the same
findings (`analyze_batch` reads each text in windows of its own).

No scan waits for a timer: a scan that finds no batch running runs at once, as the leader of a
batch of whatever is queued (itself, at least). Scans that arrive while a batch runs queue up;
when it ends, the first of them leads the next batch, which takes the queued scans with the
same language, entities and threshold, in order, up to MAX_TEXTS and MAX_BATCH_CHARS (one
window: about what a scan waited for before while another held spaCy's lock). So under no
concurrency a scan costs what it did; under concurrency it waits for the batches queued before
its own, each of at most one window of text, and never past its own time limit.

Only English texts of at most MAX_CHARS are batched. Longer texts are read alone, a group of
windows at a time, as before; Chinese and mixed texts too: the Chinese model runs outside
Python's lock, so they are read beside English scans on the other core, and a client sending
slow Chinese text would otherwise hold up every note queued behind its batch.

Each scan keeps its own time limit, counted from its arrival: a scan still queued when its limit
passes leaves the queue with ScanTimeout, and so does a member whose limit passed before its
batch began. A batch runs under its members' latest limit and answers every member (as a scan
alone is answered when its last group of windows began in time); if even that runs out, each
member fails with its own limit. An error of the engine fails every member, each with an error
of its own (the engine's own type where it is the gateway's, else RuntimeError; tracebacks are
not shared between requests).
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

from app.errors import GatewayError
from app.pii.deadline import Deadline, ScanTimeout
from app.pii.engine import DEFAULT_THRESHOLD, Finding, PiiEngine
from app.pii.language import detect_language
from app.pii.windows import WINDOW

MAX_CHARS = WINDOW // 2  # longer texts are scanned alone
MAX_TEXTS = 16
MAX_BATCH_CHARS = WINDOW

Key = tuple[str, tuple[str, ...] | None, float]


@dataclass(eq=False)
class _Ask:
    text: str
    key: Key
    deadline: Deadline
    answered: threading.Event = field(default_factory=threading.Event)
    leads: bool = False  # this scan's thread runs the next batch
    taken: bool = False  # in a batch
    result: tuple[str, list[Finding]] | None = None
    error: BaseException | None = None

    def limit(self) -> float | None:
        return None if self.deadline.seconds is None else self.deadline.remaining()

    def timed_out(self) -> ScanTimeout:
        return ScanTimeout(self.deadline.seconds or 0)


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

    def batched(self, text: str, language: str) -> bool:
        return len(text) <= self.max_chars and (
            language == "en" or language == "auto" and detect_language(text) == "en")

    def scan(self, text: str, *, language: str = "auto",
             entities: Sequence[str] | None = None, threshold: float = DEFAULT_THRESHOLD,
             time_limit: float | None = None) -> tuple[str, list[Finding]]:
        """What `PiiEngine.analyze` answers for this text, batched with concurrent scans."""
        if not self.batched(text, language):
            return self.engine.analyze(text, language=language, entities=entities,
                                       threshold=threshold, time_limit=time_limit)
        ask = _Ask(text, (language, tuple(sorted(entities)) if entities else None, threshold),
                   Deadline(time_limit))
        with self._lock:
            self._queue.append(ask)
            if not self._running:
                self._running = ask.leads = True
        led = False
        try:
            if not ask.leads:
                self._wait(ask)
            if ask.leads:
                led = True
                self._lead(ask)
        except BaseException:
            if not led:
                self._abandon(ask)
            raise
        if ask.error is not None:
            raise ask.error
        if ask.result is None:
            raise RuntimeError("a batched PII scan ended without a result")
        return ask.result

    def _wait(self, ask: _Ask) -> None:
        """Until the ask is answered or leads the next batch; ScanTimeout if its time runs out
        while it is still queued (a batch that took it answers it)."""
        limited = ask.deadline.seconds is not None
        while not ask.answered.wait(ask.deadline.remaining() if limited else None):
            with self._lock:
                if not (ask.leads or ask.taken):
                    self._queue.remove(ask)
                    raise ask.timed_out()
            ask.answered.wait()

    def _abandon(self, ask: _Ask) -> None:
        """A scan's thread leaves (interrupted) before its batch: out of the queue, and the
        turn handed on if it was this scan's."""
        with self._lock:
            if ask in self._queue:
                self._queue.remove(ask)
                if ask.leads:
                    self._hand_on()

    def _hand_on(self) -> None:
        """The next queued scan leads the next batch; none: no batch runs. Under the lock."""
        if self._queue:
            self._queue[0].leads = True
            self._queue[0].answered.set()
        else:
            self._running = False

    def _lead(self, own: _Ask) -> None:
        """Run one batch from the head of the queue (this thread's own scan is at its head),
        then hand the turn on."""
        batch: list[_Ask] = []
        try:
            with self._lock:
                chars = 0
                for ask in self._queue:
                    if ask.key != own.key:
                        continue
                    if batch and (len(batch) == self.max_texts
                                  or chars + len(ask.text) > self.max_chars_batch):
                        break
                    batch.append(ask)
                    chars += len(ask.text)
                for ask in batch:
                    self._queue.remove(ask)
                    ask.taken = True
            self._run([ask for ask in batch if not self._expired(ask)])
        finally:
            with self._lock:
                if own in self._queue:  # failed before its batch was taken
                    self._queue.remove(own)
                self._hand_on()
            for ask in batch:
                ask.answered.set()

    @staticmethod
    def _expired(ask: _Ask) -> bool:
        if ask.deadline.seconds is not None and ask.deadline.remaining() <= 0:
            ask.error = ask.timed_out()
            return True
        return False

    def _run(self, batch: list[_Ask]) -> None:
        if not batch:
            return
        limits = [ask.limit() for ask in batch]
        language, entities, threshold = batch[0].key
        self.batches += 1
        self.texts += len(batch)
        try:
            results = self.engine.analyze_batch(
                [ask.text for ask in batch], languages=[language] * len(batch),
                entities=entities, threshold=threshold,
                time_limit=None if None in limits else max(x for x in limits if x is not None))
        except ScanTimeout:
            for ask in batch:
                ask.error = ask.timed_out()
            return
        except BaseException as exc:  # every member fails, each with an error of its own
            for ask in batch:
                ask.error = _own_copy(exc) if isinstance(exc, GatewayError) else \
                    RuntimeError("the PII engine failed on a batch of scans")
            raise
        for ask, result in zip(batch, results, strict=True):
            ask.result = result


def _own_copy(exc: GatewayError) -> GatewayError:
    """The same problem as another object, without its traceback (and the frames' locals, the
    other requests' texts, that it holds)."""
    clone = type(exc).__new__(type(exc))
    clone.__dict__.update(exc.__dict__)
    clone.args = exc.args
    return clone
