"""The helper process for long scans: the same findings, and a scan never depends on it."""

from __future__ import annotations

import contextlib
import os
import random
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from app.pii import scan_process
from app.pii.deadline import ScanTimeout
from app.pii.engine import PiiEngine
from app.pii.scan_process import ScanProcess
from tests.server import wait_for

FIRST = "John Mary Ahmed Olga Wei Priya Lucas Fatima Kenji Sofia Omar Grace".split()
LAST = "Smith Jones Khan Petrova Zhang Patel Martin Haddad Sato Rossi Said Kelly".split()
CITY = "London Lagos Lima Oslo Pune Perth Kyiv Quito Hanoi Tunis Cork Bern".split()


def prose(chars: int, seed: int) -> str:
    """English in which no two windows are alike, so none is read only once."""
    pick = random.Random(seed)
    text = ""
    while len(text) < chars:
        text += (f"{pick.choice(FIRST)} {pick.choice(LAST)} met {pick.choice(FIRST)} "
                 f"{pick.choice(LAST)} in {pick.choice(CITY)}; call him on "
                 f"415-555-{pick.randrange(10_000):04d} or write to "
                 f"{pick.choice(FIRST).lower()}@example.org. ")
    return text


@pytest.fixture(scope="module")
def helped(engine: PiiEngine) -> Iterator[tuple[PiiEngine, ScanProcess]]:
    """The shared engine with a helper that takes scans of 4,000 characters or more."""
    helper = ScanProcess(engine.en_model, min_chars=4_000)
    wait_for(lambda: helper.submit("ner", ["warm up"]), timeout=60,
             what="the helper loading").get(["warm up"], 60)
    engine.scan_process = helper
    try:
        yield engine, helper
    finally:
        engine.scan_process = None
        helper.close()


def alone(engine: PiiEngine, text: str, **kwargs: object) -> object:
    helper, engine.scan_process = engine.scan_process, None
    try:
        return engine.analyze(text, **kwargs)  # type: ignore[arg-type]
    finally:
        engine.scan_process = helper


def chinese(chars: int, seed: int) -> str:
    """Chinese notes in which no sentence repeats."""
    pick = random.Random(seed)
    places = ["北京市海淀区", "上海市浦东新区", "广州市白云区"]
    text = ""
    while len(text) < chars:
        text += (f"客户{pick.choice('王李张刘陈杨赵黄周吴')}{pick.choice('芳伟娜敏静磊洋勇艳杰')}"
                 f"来电投诉，地址是{pick.choice(places)}"
                 f"{pick.randrange(1, 300)}号，电话138{pick.randrange(10**8):08d}。")
    return text


@pytest.mark.parametrize(("make", "types", "kind"), [
    (lambda: prose(12_000, seed=1), {"PERSON", "LOCATION", "PHONE_NUMBER", "EMAIL_ADDRESS"},
     "analyze"),
    (lambda: chinese(9_000, seed=1), {"PERSON", "LOCATION", "PHONE_NUMBER"}, "tag"),
    (lambda: mixed(12_000, seed=1), {"PERSON", "LOCATION"}, "ner"),
], ids=["english", "chinese", "english-in-chinese"])
def test_a_long_scan_finds_the_same_with_the_helper(
        helped: tuple[PiiEngine, ScanProcess], make: Callable[[], str], types: set[str],
        kind: str) -> None:
    engine, helper = helped
    text = make()
    before = helper.served
    with spying(helper) as kinds:
        with_helper = engine.analyze(text)
    assert helper.served == before + 1
    assert with_helper == alone(engine, text)
    assert {f.type for f in with_helper[1]} >= types
    assert kinds == [kind]


def test_lent_windows_are_read_with_the_scans_entities_and_threshold(
        helped: tuple[PiiEngine, ScanProcess]) -> None:
    engine, helper = helped
    text = prose(12_000, seed=10)
    for options in ({"entities": ["PHONE_NUMBER", "LOCATION"]}, {"threshold": 0.9}):
        with spying(helper) as kinds:
            found = engine.analyze(text, **options)
        assert kinds == ["analyze"]
        assert found == alone(engine, text, **options)
        assert found[1]
    assert {f.type for f in found[1]} < {f.type for f in engine.analyze(text)[1]}


@contextlib.contextmanager
def spying(helper: ScanProcess) -> Iterator[list[str]]:
    """The kinds of the requests the helper takes meanwhile."""
    kinds: list[str] = []
    submit = helper.submit

    def spy(kind: scan_process.Kind, texts: Sequence[str], **options: Any) -> object:
        pending = submit(kind, texts, **options)
        if pending is not None:
            kinds.append(kind)
        return pending
    helper.submit = spy  # type: ignore[method-assign,assignment]
    try:
        yield kinds
    finally:
        del helper.submit


def test_short_scans_and_mixed_batches_stay_in_this_process(
        helped: tuple[PiiEngine, ScanProcess]) -> None:
    engine, helper = helped
    before = helper.served
    assert engine.analyze("Call John Smith in London") == alone(engine, "Call John Smith in London")
    assert helper.served == before
    texts = [prose(3_000, seed=s) for s in range(3)] + ["客户王芳 said John Smith called " * 100]
    languages = ["auto"] * len(texts)
    batch = engine.analyze_batch(texts, languages=languages)
    assert helper.served == before + 1  # the batch's English is long enough together
    assert batch == [alone(engine, t) for t in texts]


def test_while_the_helper_is_busy_another_long_scan_reads_here(
        helped: tuple[PiiEngine, ScanProcess]) -> None:
    engine, helper = helped
    texts = [prose(12_000, seed=s) for s in (2, 3)]
    expected = [alone(engine, t) for t in texts]
    results: dict[int, object] = {}
    before = helper.served

    def scan(n: int) -> None:
        results[n] = engine.analyze(texts[n])

    threads = [threading.Thread(target=scan, args=(n,)) for n in (0, 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [results[0], results[1]] == expected
    assert before + 1 <= helper.served <= before + 2


def test_a_helper_that_dies_is_replaced_and_the_scan_completes(
        helped: tuple[PiiEngine, ScanProcess]) -> None:
    engine, helper = helped
    text = prose(12_000, seed=4)
    expected = alone(engine, text)
    pid = helper.pid
    assert pid is not None
    os.kill(pid, signal.SIGKILL)
    assert engine.analyze(text) == expected  # read here: the helper's pipe is closed
    assert helper.pid not in (None, pid)
    assert wait_for(lambda: engine.analyze(text) == expected and helper.served > 0
                    and helper._child is not None and helper._child.ready, timeout=60)


@pytest.mark.parametrize("make", [
    lambda: prose(12_000, seed=5),
    # a request larger than a pipe holds: writing it blocks while the helper is stopped
    lambda: chinese(90_000, seed=5),
], ids=["english", "chinese-larger-than-a-pipe"])
def test_a_stuck_helper_makes_the_scan_fail_closed_at_its_deadline_then_recovers(
        helped: tuple[PiiEngine, ScanProcess], make: Callable[[], str]) -> None:
    engine, helper = helped
    text = make()
    expected = alone(engine, text)
    pid = helper.pid
    assert pid is not None
    os.kill(pid, signal.SIGSTOP)
    try:
        started = time.monotonic()
        with pytest.raises(ScanTimeout):
            engine.analyze(text, time_limit=1.0)
        assert time.monotonic() - started < 10
        assert engine.analyze(text) == expected  # the helper owes an answer: read here
    finally:
        os.kill(pid, signal.SIGCONT)
    served = helper.served
    # once the abandoned answer has arrived it is thrown away, and the helper serves again
    assert wait_for(lambda: engine.analyze(text) == expected and helper.served > served,
                    timeout=60)
    assert helper.pid == pid


def test_the_engine_starts_no_helper_when_it_is_turned_off(engine: PiiEngine) -> None:
    saved, engine.scan_process = engine.scan_process, None
    try:
        engine.start_scan_process(0)
        assert engine.scan_process is None
    finally:
        engine.scan_process = saved


def replaced(helper: ScanProcess, times: int) -> bool:
    """Whether `helper` has been replaced `times` times and the last one is ready and idle."""
    return helper._restarts == times and helper._child is not None \
        and helper._ready(helper._child) and not helper._lock.locked()


class Misbehaving(ScanProcess):
    """A helper process that answers as `mode` says (tests/pii/fake_scan_helper.py)."""

    mode = "shape"

    def _command(self, request_fd: int, answer_fd: int) -> list[str]:
        return [sys.executable, str(Path(__file__).with_name("fake_scan_helper.py")), self.mode,
                str(request_fd), str(answer_fd)]


@pytest.fixture
def misbehaving(engine: PiiEngine, request: pytest.FixtureRequest
                ) -> Iterator[tuple[PiiEngine, Misbehaving]]:
    helper = type("Helper", (Misbehaving,), {"mode": request.param})(
        engine.en_model, min_chars=4_000)
    if request.param != "halfready":
        wait_for(lambda: helper._child is not None and helper._ready(helper._child),
                 what="the fake helper")
    saved, engine.scan_process = engine.scan_process, helper
    try:
        yield engine, helper
    finally:
        engine.scan_process = saved
        helper.close()


def mixed(chars: int, seed: int) -> str:
    """Chinese notes with English names in them, no two windows alike: the helper reads only
    the English model's entities for them."""
    pick = random.Random(seed)
    text = ""
    while len(text) < chars:
        text += (f"客户{pick.choice('王李张刘陈')}{pick.choice('芳伟娜敏静')}说 "
                 f"{pick.choice(FIRST)} {pick.choice(LAST)} called from {pick.choice(CITY)}。")
    return text


@pytest.mark.parametrize(("misbehaving", "make"), [
    *[pytest.param(mode, lambda: prose(12_000, seed=6), id=f"{mode}-findings")  # English
      for mode in ("shape", "fewer", "more", "outside", "unowned", "untyped", "score",
                   "lowscore", "nolabel", "empty", "deep")],  # windows, lent whole: findings
    *[pytest.param(mode, lambda: mixed(12_000, seed=6), id=f"{mode}-entities")  # the English
      for mode in ("outside", "overlap", "nolabel")],  # model's entities in Chinese text
], indirect=["misbehaving"])
def test_a_malformed_answer_is_never_used_and_the_helper_is_replaced(
        misbehaving: tuple[PiiEngine, Misbehaving], make: Callable[[], str],
        caplog: pytest.LogCaptureFixture) -> None:
    engine, helper = misbehaving
    text = make()
    expected = alone(engine, text)
    assert engine.analyze(text, time_limit=30) == expected
    wait_for(lambda: replaced(helper, 1), what="the helper replaced")
    assert engine.analyze(text, time_limit=30) == expected  # and again with its replacement
    wait_for(lambda: helper._restarts == 2, what="the replacement replaced")
    assert "met" not in caplog.text  # no customer text in what is logged
    assert "called" not in caplog.text


@pytest.mark.parametrize("misbehaving", ["fewer"], indirect=True)
def test_windows_a_failed_helper_leaves_are_read_here_within_the_deadline(
        misbehaving: tuple[PiiEngine, Misbehaving]) -> None:
    """The helper fails at once: the windows lent to it are read here, and the scan still
    fails closed at its deadline, not after reading them all."""
    engine, _ = misbehaving
    text = prose(80_000, seed=11)
    alone(engine, text)  # the first scan meets every word for the first time: time later ones
    took = []
    for _ in range(2):  # the quicker of two: a scan slowed by a busy machine sets no deadline
        started = time.monotonic()
        expected = alone(engine, text)
        took.append(time.monotonic() - started)
    fastest = min(took)
    assert engine.analyze(text) == expected
    started = time.monotonic()
    with pytest.raises(ScanTimeout):
        engine.analyze(text, time_limit=fastest * 0.4)
    assert time.monotonic() - started < fastest * 0.9


@pytest.mark.parametrize("misbehaving", ["half"], indirect=True)
def test_a_helper_stuck_mid_answer_fails_the_scan_closed_and_is_killed_in_time(
        misbehaving: tuple[PiiEngine, Misbehaving], monkeypatch: pytest.MonkeyPatch) -> None:
    engine, helper = misbehaving
    monkeypatch.setattr(scan_process, "STUCK_SECONDS", 2.0)
    text = prose(12_000, seed=7)
    expected = alone(engine, text)
    pid = helper.pid
    started = time.monotonic()
    with pytest.raises(ScanTimeout):
        engine.analyze(text, time_limit=1.0)
    assert time.monotonic() - started < 10
    assert engine.analyze(text) == expected  # busy: read here
    time.sleep(2.5)
    assert engine.analyze(text) == expected  # this scan finds it stuck and has it killed
    assert wait_for(lambda: helper.pid not in (None, pid), what="the stuck helper replaced")


def test_a_helper_idle_past_the_stuck_time_is_not_taken_for_stuck(
        helped: tuple[PiiEngine, ScanProcess], monkeypatch: pytest.MonkeyPatch) -> None:
    """A scan that finds the helper busy kills it only if it has owed an answer, and sent
    nothing, for the stuck time: not because the helper was idle that long before a scan
    took it (here, one that has the lock and has not yet sent its request)."""
    engine, helper = helped
    monkeypatch.setattr(scan_process, "STUCK_SECONDS", 0.2)
    pid, restarts = helper.pid, helper._restarts
    time.sleep(0.5)  # idle, answered everything
    with helper._lock:  # another scan has just taken the helper
        assert helper.submit("ner", ["John Smith"]) is None
        time.sleep(0.3)
        assert helper.submit("ner", ["John Smith"]) is None
    text = prose(12_000, seed=8)
    assert engine.analyze(text) == alone(engine, text)
    assert (helper.pid, helper._restarts) == (pid, restarts)
    assert helper._child is not None
    assert helper._child.process.poll() is None


def test_a_scan_that_cannot_start_its_exchange_reads_here_and_frees_the_helper(
        helped: tuple[PiiEngine, ScanProcess], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    engine, helper = helped
    text = prose(12_000, seed=9)
    expected = alone(engine, text)
    served = helper.served

    class NoThreads(threading.Thread):
        def start(self) -> None:
            raise RuntimeError("can't start new thread")

    monkeypatch.setattr(scan_process, "threading",
                        SimpleNamespace(Thread=NoThreads, Lock=threading.Lock))
    assert engine.analyze(text) == expected
    assert not helper._lock.locked()
    assert helper._owing is None
    assert "could not be sent a scan" in caplog.text
    monkeypatch.undo()
    assert engine.analyze(text) == expected  # and the helper serves the next one
    assert helper.served == served + 1


@pytest.mark.parametrize("misbehaving", ["shape"], indirect=True)
def test_a_helper_that_cannot_be_started_again_leaves_scans_to_this_process(
        misbehaving: tuple[PiiEngine, Misbehaving], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    engine, helper = misbehaving
    monkeypatch.setattr(helper, "_command", lambda *fds: ["/nonexistent/python"])
    text = prose(12_000, seed=10)
    expected = alone(engine, text)
    assert engine.analyze(text, time_limit=30) == expected  # malformed answer: restart fails
    wait_for(lambda: helper._child is None and not helper._lock.locked(),
             what="the failed restart")
    assert "could not be started again (FileNotFoundError)" in caplog.text
    assert engine.analyze(text, time_limit=30) == expected  # no helper: read here
    assert helper._child is None
    monkeypatch.undo()  # the machine has processes to spare again: a later scan starts one
    monkeypatch.setattr(helper, "_start_at", time.monotonic())
    assert wait_for(lambda: helper.submit("ner", ["John Smith"]) is None
                    and helper._child is not None, what="a helper started again")


def test_a_helper_that_cannot_be_started_at_all_leaves_the_gateway_serving(
        engine: PiiEngine, caplog: pytest.LogCaptureFixture) -> None:
    helper = type("Helper", (Misbehaving,), {"_command": lambda *a: ["/nonexistent/python"]})(
        engine.en_model, min_chars=4_000)
    try:
        assert helper.pid is None
        assert helper.submit("ner", ["John Smith"]) is None  # not yet time to try again
        assert "could not be started (FileNotFoundError)" in caplog.text
    finally:
        helper.close()


@pytest.mark.parametrize("misbehaving", ["shape"], indirect=True)
def test_helpers_that_keep_failing_are_started_again_only_so_often(
        misbehaving: tuple[PiiEngine, Misbehaving], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    engine, helper = misbehaving
    monkeypatch.setattr(scan_process, "MAX_RESTARTS", 1)
    text = prose(12_000, seed=11)
    expected = alone(engine, text)
    assert engine.analyze(text, time_limit=30) == expected
    wait_for(lambda: replaced(helper, 1), what="the helper replaced")
    assert engine.analyze(text, time_limit=30) == expected
    wait_for(lambda: not helper._lock.locked(), what="the exchange to end")
    assert helper._child is None  # one restart in the window was all
    assert "failed 1 times after it was started again within 60 minutes" in caplog.text
    assert helper.submit("ner", ["John Smith"]) is None
    assert helper._child is None
    # an hour later (the restart aged by hand, not waited for)
    helper._restarted[0] -= scan_process.RESTART_WINDOW + 1
    helper._start_at = time.monotonic()
    assert helper.submit("ner", ["John Smith"]) is None  # starts one, not yet ready
    assert helper._child is not None
    assert helper._restarts == 2


@pytest.mark.parametrize("misbehaving", ["halfready"], indirect=True)
def test_half_a_ready_message_holds_no_scan_and_the_helper_is_replaced_in_time(
        misbehaving: tuple[PiiEngine, Misbehaving], monkeypatch: pytest.MonkeyPatch) -> None:
    engine, helper = misbehaving
    monkeypatch.setattr(scan_process, "READY_SECONDS", 1.0)
    text = prose(12_000, seed=12)
    pid = helper.pid
    started = time.monotonic()
    assert engine.analyze(text, time_limit=10) == alone(engine, text)
    assert time.monotonic() - started < 10
    assert not helper._lock.locked()
    assert wait_for(lambda: helper.submit("ner", ["John Smith"]) is None
                    and helper.pid not in (None, pid), what="the helper replaced")


@pytest.mark.parametrize("misbehaving", ["extra"], indirect=True)
def test_an_answer_out_of_turn_is_never_taken_for_the_next_request(
        misbehaving: tuple[PiiEngine, Misbehaving]) -> None:
    _, helper = misbehaving
    texts = ["nothing personal here", "nor here"]
    first = helper.submit("ner", texts)
    assert first is not None
    assert first.get(texts, 30) == {text: [] for text in texts}
    wait_for(lambda: not helper._lock.locked(), what="the exchange to end")
    second = helper.submit("ner", texts)  # the helper has sent one more answer meanwhile
    assert second is not None
    assert second.get(texts, 30) is None  # failed: read here, never the stray answer
    assert wait_for(lambda: helper._restarts == 1, what="the helper replaced")


@pytest.mark.parametrize("misbehaving", ["shape"], indirect=True)
def test_a_helper_started_while_it_is_being_closed_is_stopped(
        misbehaving: tuple[PiiEngine, Misbehaving], monkeypatch: pytest.MonkeyPatch) -> None:
    """close() while a failed helper is being replaced finds no helper to stop: the one that
    starts then must stop itself, not serve after close()."""
    engine, helper = misbehaving
    started = []
    start = helper._start

    def start_while_closing() -> None:
        helper.close()  # arrives between the old helper's stop and the new one's start
        start()
        assert helper._child is not None
        started.append(helper._child.process)

    monkeypatch.setattr(helper, "_start", start_while_closing)
    text = prose(12_000, seed=13)
    assert engine.analyze(text, time_limit=30) == alone(engine, text)
    wait_for(lambda: not helper._lock.locked(), what="the exchange to end")
    assert len(started) == 1
    assert helper._child is None
    assert started[0].poll() is not None  # stopped, and waited for
    assert helper.submit("ner", ["John Smith"]) is None


def test_a_starting_gateway_has_its_helper_loaded_before_it_serves(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The helper loads its models while the engine loads its own, and the start waits for it:
    one that loaded after the gateway began serving took a core from its first requests (their
    p99 was 134 ms, against 20 ms once warm)."""
    from app.pii import engine as engine_module
    from app.pii import service

    if engine_module._usable_cpus() < 2:
        pytest.skip("one core: scans are not shared with a helper")
    monkeypatch.setattr(service, "_coalescers", {})  # a process starting: nothing loaded yet
    engine = service.start_engine("pgw-en-ner", parallel_min_chars=4_000)
    helper = engine.scan_process
    try:
        assert helper is not None
        assert helper.wait_ready(0)  # ready already, not still loading
        again = service.start_engine("pgw-en-ner", parallel_min_chars=4_000)
        assert again is engine
        assert engine.scan_process is helper  # not a second helper
    finally:
        if helper is not None:
            helper.close()
