"""Short scans from concurrent threads go through the engine as one batch, each with the findings
it gets alone; time limits stay each scan's own; an engine error reaches every member and the
next scan still runs."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from app.pii.coalesce import Coalescer
from app.pii.deadline import Deadline, ScanTimeout
from app.pii.engine import Finding, PiiEngine

_FIRST = ("Mary", "John", "Ahmed", "Olga", "Juan", "Sarah")
_LAST = ("Jones", "Smith", "Khan", "Petrova", "Perez", "Brown")


def _note(i: int) -> str:
    r = random.Random(i)
    if i % 3 == 1:
        return (f"客户{r.choice('王李张刘陈')}女士来电，手机139{r.randrange(10**8):08d}，"
                f"地址北京市海淀区中关村大街{r.randrange(1, 99)}号，请 {r.choice(_FIRST)} "
                f"{r.choice(_LAST)} 回电。")
    return (f"{r.choice(_FIRST)} {r.choice(_LAST)} called about order {1000 + i}; call back on "
            f"415-555-{r.randrange(10**4):04d} or write to user{i}@example.com, "
            f"{r.randrange(1, 300)} {r.choice(_LAST)} Street, Leeds.")


def _shape(result: tuple[str, list[Finding]]) -> tuple[str, list[tuple[str, int, int, float]]]:
    language, findings = result
    return language, [(f.type, f.start, f.end, round(f.score, 6)) for f in findings]


def test_concurrent_scans_are_batched_and_find_what_each_finds_alone(engine: PiiEngine) -> None:
    texts = [_note(i) for i in range(48)] + ["Sarah Johnson, 22 Baker Street. " * 200]
    alone = {text: _shape(engine.analyze(text, time_limit=30)) for text in texts}
    coalescer = Coalescer(engine)
    start = threading.Barrier(6)

    def scan_many(part: Sequence[str]) -> list[tuple[str, Any]]:
        start.wait()
        return [(text, _shape(coalescer.scan(text, time_limit=30))) for text in part]

    with ThreadPoolExecutor(6) as pool:
        parts = [texts[k::6] for k in range(6)]
        together = [pair for done in pool.map(scan_many, parts) for pair in done]
    assert len(together) == len(texts)
    for text, result in together:
        assert result == alone[text], text
    assert coalescer.texts == len(texts) - 1  # the long text went alone
    assert coalescer.batches < coalescer.texts  # some batches held several texts


class _Engine:
    """Stands in for the engine to drive the coalescer's turns: a batch waits for the event
    `gate` gives for its texts (if any: past its time limit it raises ScanTimeout, as the engine
    does) and answers every text with one finding of its own length."""

    def __init__(self, gate: Callable[[list[str]], threading.Event | None] = lambda texts: None,
                 fail: Callable[[list[str]], BaseException | None] = lambda texts: None):
        self.gate, self.fail = gate, fail
        self.batches: list[list[str]] = []
        self.alone: list[tuple[str, float | None]] = []

    def analyze_batch(self, texts: Sequence[str], *, languages: Sequence[str],
                      entities: Sequence[str] | None = None, threshold: float = 0.4,
                      time_limit: float | None = None) -> list[tuple[str, list[Finding]]]:
        self.batches.append(list(texts))
        gate = self.gate(list(texts))
        if gate is not None and not gate.wait(Deadline(time_limit).remaining()):
            raise ScanTimeout(time_limit or 0)
        error = self.fail(list(texts))
        if error is not None:
            raise error
        return [("en", [Finding("PERSON", 0, len(text), 0.9, "stand-in")]) for text in texts]

    def analyze(self, text: str, *, language: str = "auto",
                entities: Sequence[str] | None = None, threshold: float = 0.4,
                time_limit: float | None = None) -> tuple[str, list[Finding]]:
        self.alone.append((text, time_limit))
        return "en", [Finding("PERSON", 0, len(text), 0.9, "alone")]


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["result"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed to the test
            out["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    return thread, out


def _queued(coalescer: Coalescer, n: int) -> None:
    until = time.monotonic() + 5
    while len(coalescer._queue) < n:
        assert time.monotonic() < until, "the scans never queued"
        time.sleep(0.005)


def test_scans_arriving_during_a_batch_go_together_in_the_next() -> None:
    release = threading.Event()
    stand_in = _Engine(lambda texts: release if texts == ["first"] else None)
    coalescer = Coalescer(stand_in)  # type: ignore[arg-type]
    first, _ = _in_thread(lambda: coalescer.scan("first", time_limit=10))
    while not stand_in.batches:
        time.sleep(0.005)
    others = [_in_thread(lambda t=t: coalescer.scan(t, time_limit=10))  # type: ignore[misc]
              for t in ("second", "third", "fourth")]
    _queued(coalescer, 3)
    release.set()
    for thread, _ in [(first, {}), *others]:
        thread.join(5)
    assert [sorted(batch) for batch in stand_in.batches] == [["first"],
                                                             ["fourth", "second", "third"]]
    assert [out["result"][1][0].end for _, out in others] == [6, 5, 6]


def test_a_scan_whose_time_runs_out_in_the_queue_leaves_it_at_its_limit() -> None:
    release = threading.Event()
    stand_in = _Engine(lambda texts: release if texts == ["slow"] else None)
    coalescer = Coalescer(stand_in)  # type: ignore[arg-type]
    slow, slow_out = _in_thread(lambda: coalescer.scan("slow", time_limit=5))
    while not stand_in.batches:
        time.sleep(0.005)
    began = time.monotonic()
    with pytest.raises(ScanTimeout) as raised:
        coalescer.scan("queued", time_limit=0.2)
    assert time.monotonic() - began < 2  # not held until the batch ahead ends
    assert raised.value.extra["limit_seconds"] == 0.2
    assert coalescer._queue == []
    release.set()
    slow.join(5)
    assert slow_out["result"][1][0].end == 4
    assert coalescer.scan("next", time_limit=5)[1][0].end == 4  # the turn was handed on


def test_a_batch_that_runs_out_of_time_scans_its_other_members_alone() -> None:
    release, never = threading.Event(), threading.Event()
    stand_in = _Engine(lambda texts: release if texts == ["head"] else never)
    coalescer = Coalescer(stand_in)  # type: ignore[arg-type]
    head, _ = _in_thread(lambda: coalescer.scan("head", time_limit=5))
    while not stand_in.batches:
        time.sleep(0.005)
    short, short_out = _in_thread(lambda: coalescer.scan("short", time_limit=0.3))
    roomy, roomy_out = _in_thread(lambda: coalescer.scan("roomy", time_limit=5))
    _queued(coalescer, 2)
    release.set()  # the next batch (short, roomy), limited by short's 0.3 s, runs out
    for thread in (head, short, roomy):
        thread.join(5)
    assert isinstance(short_out["error"], ScanTimeout)
    assert roomy_out["result"][1][0].recognizer == "alone"
    text, limit = stand_in.alone[0]
    assert text == "roomy"
    assert limit is not None
    assert 3.5 < limit < 5


def test_an_engine_error_reaches_every_member_and_the_next_scan_runs() -> None:
    release = threading.Event()
    stand_in = _Engine(lambda texts: release if texts == ["head"] else None,
                       fail=lambda texts: RuntimeError("model broke") if "bad" in texts else None)
    coalescer = Coalescer(stand_in)  # type: ignore[arg-type]
    head, _ = _in_thread(lambda: coalescer.scan("head", time_limit=5))
    while not stand_in.batches:
        time.sleep(0.005)
    members = [_in_thread(lambda t=t: coalescer.scan(t, time_limit=5))  # type: ignore[misc]
               for t in ("bad", "good")]
    _queued(coalescer, 2)
    release.set()
    for thread, _ in [(head, None), *members]:
        thread.join(5)
    assert [str(out["error"]) for _, out in members] == ["model broke", "model broke"]
    assert coalescer.scan("after", time_limit=5)[1][0].end == 5
    assert not coalescer._running


def test_scans_with_other_entities_or_threshold_are_not_batched_together() -> None:
    release = threading.Event()
    stand_in = _Engine(lambda texts: release if texts == ["head"] else None)
    coalescer = Coalescer(stand_in)  # type: ignore[arg-type]
    head, _ = _in_thread(lambda: coalescer.scan("head", time_limit=5))
    while not stand_in.batches:
        time.sleep(0.005)
    members = [_in_thread(lambda: coalescer.scan("a", time_limit=5)),
               _in_thread(lambda: coalescer.scan("b", entities=["PERSON"], time_limit=5)),
               _in_thread(lambda: coalescer.scan("c", time_limit=5)),
               _in_thread(lambda: coalescer.scan("d", threshold=0.9, time_limit=5))]
    _queued(coalescer, 4)
    release.set()
    for thread, _ in [(head, None), *members]:
        thread.join(5)
    assert sorted(map(sorted, stand_in.batches[1:])) == [["a", "c"], ["b"], ["d"]]


def test_a_batch_holds_about_one_group_of_windows_and_long_texts_go_alone() -> None:
    release = threading.Event()
    stand_in = _Engine(lambda texts: release if texts == ["head"] else None)
    coalescer = Coalescer(stand_in)  # type: ignore[arg-type]
    head, _ = _in_thread(lambda: coalescer.scan("head", time_limit=5))
    while not stand_in.batches:
        time.sleep(0.005)
    texts = [str(i) * 1900 for i in range(5)]
    members = [_in_thread(lambda t=t: coalescer.scan(t, time_limit=5))  # type: ignore[misc]
               for t in texts]
    _queued(coalescer, 5)
    release.set()
    for thread, _ in [(head, None), *members]:
        thread.join(5)
    assert sorted(len(batch) for batch in stand_in.batches[1:]) == [1, 4]  # 8,000 characters
    long_text = "x" * 2001
    assert coalescer.scan(long_text, time_limit=5)[1][0].recognizer == "alone"
    assert stand_in.alone == [(long_text, 5)]
