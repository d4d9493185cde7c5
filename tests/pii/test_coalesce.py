"""Short English scans from concurrent threads go through the engine as one batch, each with the
findings it gets alone; time limits stay each scan's own; an engine error fails every member,
each with an error of its own; a thread that stops hands its turn on."""

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
    english = [t for t in texts if coalescer.batched(t, "auto")]
    assert len(english) == 32  # the Chinese notes and the long text were scanned alone
    assert coalescer.texts == len(english)
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


def _behind_a_held_batch(coalescer: Coalescer, stand_in: _Engine, release: threading.Event,
                         scans: Sequence[Callable[[], Any]], *, head: str = "head",
                         on_release: Callable[[], None] = lambda: None) -> list[dict[str, Any]]:
    """Start a scan of `head`, whose batch waits for `release`; queue `scans` behind it, in
    order, each on a thread of its own; release it; the outcome of each of `scans` once every
    thread has ended."""
    first, _ = _in_thread(lambda: coalescer.scan(head, time_limit=10))
    while not stand_in.batches or stand_in.batches[-1] != [head]:
        time.sleep(0.005)
    members = []
    for n, scan in enumerate(scans, start=1):
        members.append(_in_thread(scan))
        _queued(coalescer, n)
    release.set()
    on_release()
    for thread, _ in [(first, None), *members]:
        thread.join(5)
    return [out for _, out in members]


def test_scans_arriving_during_a_batch_go_together_in_the_next() -> None:
    release = threading.Event()
    stand_in = _Engine(lambda texts: release if texts == ["first"] else None)
    coalescer = Coalescer(stand_in)  # type: ignore[arg-type]
    others = _behind_a_held_batch(
        coalescer, stand_in, release,
        [lambda t=t: coalescer.scan(t, time_limit=10)  # type: ignore[misc]
         for t in ("second", "third", "fourth")], head="first")
    assert [sorted(batch) for batch in stand_in.batches] == [["first"],
                                                             ["fourth", "second", "third"]]
    assert [out["result"][1][0].end for out in others] == [6, 5, 6]


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


def test_a_batch_runs_under_its_latest_limit_and_each_member_fails_with_its_own() -> None:
    release, slow, never = threading.Event(), threading.Event(), threading.Event()
    gates = {"head": release, "early": slow, "late": slow, "a": never, "b": never}
    stand_in = _Engine(lambda texts: gates[texts[0]])
    coalescer = Coalescer(stand_in)  # type: ignore[arg-type]

    def batch_of(first: str, second: str, limits: tuple[float, float]) -> list[dict[str, Any]]:
        members = _behind_a_held_batch(
            coalescer, stand_in, release,
            [lambda: coalescer.scan(first, time_limit=limits[0]),
             lambda: coalescer.scan(second, time_limit=limits[1])],
            on_release=threading.Timer(0.6, slow.set).start)  # the batch (early, late): 0.6 s
        release.clear()
        return members

    early, late = batch_of("early", "late", (0.4, 3))
    assert early["result"][1][0].end == 5  # answered: its batch began in time, under 3 s
    assert late["result"][1][0].end == 4
    a, b = batch_of("a", "b", (0.2, 0.4))  # never answered: out of time at 0.4 s
    assert a["error"].extra["limit_seconds"] == 0.2
    assert b["error"].extra["limit_seconds"] == 0.4
    assert not coalescer._running


def test_an_interrupted_scan_hands_its_turn_on() -> None:
    release = threading.Event()
    stand_in = _Engine(lambda texts: release if texts == ["head"] else None)

    class Interrupted(Coalescer):
        def _wait(self, ask: Any) -> None:
            super()._wait(ask)
            if ask.text == "interrupted":  # its turn to lead came, and the thread stops
                raise KeyboardInterrupt

    coalescer = Interrupted(stand_in)  # type: ignore[arg-type]
    stopped_out, after_out = _behind_a_held_batch(
        coalescer, stand_in, release,
        [lambda: coalescer.scan("interrupted", time_limit=5),
         lambda: coalescer.scan("after", time_limit=None)])
    assert isinstance(stopped_out["error"], KeyboardInterrupt)
    assert after_out["result"][1][0].end == 5
    assert not coalescer._running
    assert coalescer._queue == []


def test_an_engine_error_reaches_every_member_and_the_next_scan_runs() -> None:
    release = threading.Event()
    stand_in = _Engine(lambda texts: release if texts == ["head"] else None,
                       fail=lambda texts: RuntimeError("model broke") if "bad" in texts else None)
    coalescer = Coalescer(stand_in)  # type: ignore[arg-type]
    members = _behind_a_held_batch(
        coalescer, stand_in, release,
        [lambda t=t: coalescer.scan(t, time_limit=5)  # type: ignore[misc]
         for t in ("bad", "good")])
    errors = [out["error"] for out in members]
    assert sorted(map(str, errors)) == ["model broke", "the PII engine failed on a batch of scans"]
    assert errors[0] is not errors[1]
    assert coalescer.scan("after", time_limit=5)[1][0].end == 5
    assert not coalescer._running


def test_scans_with_other_entities_or_threshold_are_not_batched_together() -> None:
    release = threading.Event()
    stand_in = _Engine(lambda texts: release if texts == ["head"] else None)
    coalescer = Coalescer(stand_in)  # type: ignore[arg-type]
    _behind_a_held_batch(coalescer, stand_in, release, [
        lambda: coalescer.scan("a", time_limit=5),
        lambda: coalescer.scan("b", entities=["PERSON"], time_limit=5),
        lambda: coalescer.scan("c", time_limit=5),
        lambda: coalescer.scan("d", threshold=0.9, time_limit=5)])
    assert sorted(map(sorted, stand_in.batches[1:])) == [["a", "c"], ["b"], ["d"]]


def test_a_batch_holds_one_window_of_text_and_long_or_chinese_texts_go_alone() -> None:
    release = threading.Event()
    stand_in = _Engine(lambda texts: release if texts == ["head"] else None)
    coalescer = Coalescer(stand_in)  # type: ignore[arg-type]
    _behind_a_held_batch(coalescer, stand_in, release,
                         [lambda t=t: coalescer.scan(t, time_limit=5)  # type: ignore[misc]
                          for t in [str(i) * 900 for i in range(5)]])
    assert sorted(len(batch) for batch in stand_in.batches[1:]) == [1, 2, 2]  # 2,000 characters
    long_text, chinese = "x" * 1001, "客户王芳来电，手机13912345678"
    for text in (long_text, chinese):
        assert coalescer.scan(text, time_limit=5)[1][0].recognizer == "alone"
    assert stand_in.alone == [(long_text, 5), (chinese, 5)]
