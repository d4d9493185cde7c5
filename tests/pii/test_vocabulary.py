"""What a scan adds to spaCy's vocabulary is forgotten: the gateway's memory does not grow with
every word it has read, nor keep customers' words (issue 16, bounded scanning)."""

from __future__ import annotations

import random
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from spacy.language import Language

from app.pii.deadline import ScanTimeout
from app.pii.engine import PiiEngine
from app.pii.vocabulary import Vocabulary


def note(pick: random.Random, words: int = 60) -> str:
    """A note whose identifiers no other note has: each a word the model has never seen."""
    ids = " ".join(f"ref Qz{pick.randrange(10**9):09d}k" for _ in range(words // 3))
    return (f"Customer Maria Gonzalez wrote from m{pick.randrange(10**9)}@example.com about "
            f"order {pick.randrange(10**8)} and {ids}; call her on 415-555-0132.")


def pipeline(engine: PiiEngine) -> Language:
    nlp: Language = engine.nlp_engine.nlp["en"]  # type: ignore[index]
    return nlp


@pytest.fixture
def small_zone(engine: PiiEngine, monkeypatch: pytest.MonkeyPatch) -> Vocabulary:
    vocabulary = engine.vocabulary
    monkeypatch.setattr(vocabulary, "rotate_at", 500)
    monkeypatch.setattr(vocabulary, "wait_at", 2_000)
    return vocabulary


def test_the_words_of_finished_scans_are_forgotten_and_memory_stays_bounded(
        engine: PiiEngine, small_zone: Vocabulary) -> None:
    strings = pipeline(engine).vocab.strings
    pick = random.Random(3)
    first = note(pick)
    engine.analyze(first, language="en")
    closed = small_zone.closed
    largest = 0
    for _ in range(40):  # 40 x 20 new identifiers, about 4 strings each
        engine.analyze(note(pick), language="en")
        largest = max(largest, small_zone.added())
    assert small_zone.closed > closed
    # the zone closes once a finished scan leaves it past rotate_at: it holds that, plus one scan
    assert largest < small_zone.rotate_at + 300
    assert not [word for word in first.split() if word.startswith("Qz") and word in strings]


def test_scans_running_together_find_the_same_while_the_zone_turns_over(
        engine: PiiEngine, small_zone: Vocabulary) -> None:
    pick = random.Random(5)
    texts = [note(pick, words=90) + " John Smith met Mary Jones in London." for _ in range(24)]
    alone = [engine.analyze(text, language="en")[1] for text in texts]
    closed = small_zone.closed
    with ThreadPoolExecutor(4) as pool:
        together = list(pool.map(lambda text: engine.analyze(text, language="en")[1], texts))
    assert together == alone
    assert small_zone.closed > closed
    assert {f.type for found in alone for f in found} >= {"PERSON", "LOCATION", "EMAIL_ADDRESS"}


def test_a_scan_waits_for_a_full_zone_to_close_and_a_holder_never_waits_for_itself(
        engine: PiiEngine, small_zone: Vocabulary) -> None:
    nlp = pipeline(engine)
    pick = random.Random(7)
    held, release, entered = threading.Event(), threading.Event(), threading.Event()

    def long_scan() -> None:
        with small_zone.held():
            while small_zone.added() < small_zone.wait_at:  # a scan that fills the zone
                nlp.make_doc(note(pick, words=300))
            with small_zone.held():  # the same thread again: no wait for itself
                held.set()
            release.wait(10)

    def late_scan(closed_when_entering: list[int]) -> None:
        with small_zone.held():
            closed_when_entering.append(small_zone.closed)
            entered.set()

    closed = small_zone.closed
    first = threading.Thread(target=long_scan)
    first.start()
    assert held.wait(10)
    seen: list[int] = []
    second = threading.Thread(target=late_scan, args=(seen,))
    second.start()
    assert not entered.wait(0.3)  # the zone is full and held: the late scan waits
    release.set()
    first.join(10)
    second.join(10)
    assert seen == [closed + 1]  # it entered the next zone, once the full one had closed
    assert small_zone.added() < small_zone.rotate_at


def test_only_the_models_own_words_are_kept_for_good_never_a_customers(
        engine: PiiEngine, small_zone: Vocabulary) -> None:
    strings = pipeline(engine).vocab.strings
    pick = random.Random(9)
    private = ["Featherstonehaugh", "hunter!xyzzy", "Wrexhamshire", "siobhan.f(at)mail.example",
               "@#$%^&*()_+|~", "mint35@hotmail.com", "@john"]  # the last two: in the model's
    closed = small_zone.closed  # own strings, from its training text
    while small_zone.closed < closed + 2:  # the same words in many scans, then the zone closes
        engine.analyze(f"{note(pick)} Mr {private[0]} of {private[2]} Street, password "
                       f"{private[1]}, mail {private[3]} said. Also {private[4]} and "
                       f"{private[5]} or {private[6]} - fine.", language="en")
    assert {"Street,", "said.", "Customer"} <= small_zone.kept  # the language's, with punctuation
    assert not set(private) & small_zone.kept
    assert not [word for word in private[:5] if word in strings]


def test_a_zone_opens_again_whatever_keeping_words_meets(
        engine: PiiEngine, small_zone: Vocabulary, monkeypatch: pytest.MonkeyPatch) -> None:
    nlp = pipeline(engine)

    def fails(chunks: list[str]) -> None:
        raise ValueError("[E088] Text of length 1045556 exceeds maximum of 1000000")

    monkeypatch.setattr(small_zone, "_keep", fails)
    pick = random.Random(11)
    closed = small_zone.closed
    while small_zone.closed < closed + 2:
        engine.analyze(note(pick, words=150), language="en")
        assert nlp.vocab.in_memory_zone  # type: ignore[attr-defined]
    assert small_zone.added() < small_zone.rotate_at


def test_a_scan_waits_for_a_full_zone_no_longer_than_its_time_limit(
        engine: PiiEngine, small_zone: Vocabulary) -> None:
    nlp = pipeline(engine)
    pick = random.Random(13)
    full, release = threading.Event(), threading.Event()

    def long_scan() -> None:
        with small_zone.held():
            while small_zone.added() < small_zone.wait_at:
                nlp.make_doc(note(pick, words=300))
            full.set()
            release.wait(10)

    holder = threading.Thread(target=long_scan)
    holder.start()
    try:
        assert full.wait(10)
        started = time.monotonic()
        with pytest.raises(ScanTimeout):
            engine.analyze("Call John Smith on 415-555-0132.", language="en", time_limit=0.3)
        assert time.monotonic() - started < 2
    finally:
        release.set()
        holder.join(10)
    assert engine.analyze("Call John Smith on 415-555-0132.", language="en", time_limit=5)[1]
