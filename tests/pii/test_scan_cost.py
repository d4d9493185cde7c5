"""What makes a long scan cheaper must not change what it finds (issue 16, bounded scan time)."""

from __future__ import annotations

import dataclasses
import random
import re
from typing import Any

import numpy as np
import phonenumbers
import pytest
from presidio_analyzer import AnalyzerEngine

from app.pii import engine as engine_module
from app.pii.engine import PiiEngine
from app.pii.recognizers import phone
from app.pii.recognizers.cn_entities import window_words
from app.pii.windows import WINDOW, Window, windows
from app.pii.zh_model import tagger, viterbi
from tests.pii.conftest import found


def full_viterbi(emissions: np.ndarray, transitions: np.ndarray, length: int) -> list[int]:
    """The textbook decoder over every tag at every step, with the start and stop tags."""
    tags = emissions.shape[1]
    stop = transitions[:, tags - 2]
    score = emissions[0] + transitions[tags - 1] + (stop if length == 1 else 0)
    back = []
    for t in range(1, length):
        candidates = score[:, None] + transitions  # [from, to]
        back.append(candidates.argmax(axis=0))
        score = candidates.max(axis=0) + (emissions[t] + (stop if t == length - 1 else 0))
    path = [int(score.argmax())]
    for pointers in reversed(back):
        path.append(int(pointers[path[-1]]))
    return path[::-1]


@pytest.mark.parametrize("spread", [0.4, 3.0, 50.0])
def test_the_pruned_viterbi_finds_the_best_path_of_the_full_one(spread: float) -> None:
    rng = np.random.default_rng(7)
    tags = 12
    transitions = rng.uniform(-spread / 2, spread / 2, (tags, tags)).astype(np.float32)
    lengths = np.array([1, 2, 7, 30, 30, 19])
    emissions = rng.normal(0, 2, (len(lengths), 30, tags)).astype(np.float32)
    emissions[4] = np.round(emissions[4])  # ties
    emissions[4, :, 3] = emissions[4, :, 5]
    paths = viterbi(emissions, transitions, lengths)
    for row, length in enumerate(lengths):
        assert paths[row].tolist() == full_viterbi(emissions[row], transitions, int(length))


def test_the_real_model_decodes_as_the_full_viterbi() -> None:
    model = tagger()
    sentences = ["张传波来到广州白云区京溪街某综合市场", "王女士来电投诉", "记者陈思武报道"]
    emissions = model._emissions(sentences)  # noqa: SLF001 - the encoder's own output
    lengths = np.array([len(s) for s in sentences])
    paths = viterbi(emissions, model._transitions, lengths)  # noqa: SLF001
    for row, length in enumerate(lengths):
        assert paths[row].tolist() == full_viterbi(emissions[row], model._transitions,  # noqa: SLF001
                                                   int(length))


def test_texts_tagged_together_are_tagged_as_each_alone() -> None:
    address = "客户王芳的地址是浙江省杭州市西湖区文三路90号。"
    texts = [address, "请联系李先生。" + address, "no Chinese here", "老周和我一起去的"]
    assert tagger().tag_many(texts) == [tagger().tag(text) for text in texts]


def test_a_window_gets_the_words_lying_wholly_in_it() -> None:
    text = "记者陈思武报道，" * 400
    words = tagger().tag(text)
    starts = [w.start for w in words]
    for window in windows(text):
        inside = window_words(words, starts, window.start, window.end)
        assert inside, window
        for word in inside:
            assert text[window.start + word.start:window.start + word.end] == word.text
            assert 0 <= word.start < word.end <= window.end - window.start


def test_names_and_places_are_found_across_every_window_of_a_long_text(engine: PiiEngine) -> None:
    line = "客户王芳住在浙江省杭州市西湖区文三路90号，联系人记者陈思武。"
    text = "".join(f"第{i}条：{line}" for i in range(3 * WINDOW // len(line)))
    kinds = found(engine, text)
    assert len(windows(text)) >= 3
    for name in ("王芳", "陈思武"):
        assert sum(1 for kind, value in kinds if (kind, value) == ("PERSON", name)) \
            == text.count(name)
    assert sum(1 for kind, _ in kinds if kind == "LOCATION") >= text.count("浙江省")


def test_repeated_english_windows_go_to_the_model_once(engine: PiiEngine,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    read: list[str] = []
    process = engine.nlp_engine.process_batch

    def counting(texts: list[str], language: str, **kwargs: object):  # type: ignore[no-untyped-def]
        read.extend(texts)
        return process(texts, language, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(engine.nlp_engine, "process_batch", counting)
    text = "John Smith met Mary Jones in London; call him on 415-555-0132. " * 1500
    _, findings = engine.analyze(text)
    assert len(read) == len(set(read)) < len(windows(text))
    assert sum(1 for f in findings if text[f.start:f.end] == "John Smith") == 1500


@pytest.mark.parametrize("text", [
    "John Smith met Mary Jones in London; call him on 415-555-0132. " * 1500,
    "13812345678 " * 8_333,  # a window's worth of findings, again and again
    "Ab " * 33_333,
], ids=["prose", "phone-numbers", "two-letter-words"])
def test_a_repeated_english_window_is_analysed_once_and_found_the_same(
        engine: PiiEngine, monkeypatch: pytest.MonkeyPatch, text: str) -> None:
    analysed: list[tuple[int, int]] = []
    analyze_window = engine._analyze_window

    def counting(text: str, window: Window, *args: Any) -> Any:
        analysed.append((window.start, window.end))
        return analyze_window(text, window, *args)

    monkeypatch.setattr(engine, "_analyze_window", counting)
    once = engine.analyze(text)
    assert len(analysed) < len(windows(text)) // 4
    monkeypatch.setattr(engine_module, "SEEN_WINDOWS", 0)  # nothing remembered: every window
    analysed.clear()  # analysed on its own
    assert engine.analyze(text) == once
    assert len(analysed) == len(windows(text))


def test_the_context_step_gives_what_presidios_gives(engine: PiiEngine) -> None:
    presidio = AnalyzerEngine(registry=engine.analyzer.registry, nlp_engine=engine.nlp_engine,
                              supported_languages=["en", "zh"],
                              context_aware_enhancer=engine.analyzer.context_aware_enhancer)
    text = ("my phone: 415-555-0132, ssn 078-05-1120, card 4111111111111111, "
            "routing 011000015 and passport 912803456; 13812345678 电话 13912345678")
    for language in ("en", "zh"):
        ours = engine.analyzer.analyze(text, language)
        theirs = presidio.analyze(text, language)
        assert [(r.entity_type, r.start, r.end, r.score) for r in ours] == \
            [(r.entity_type, r.start, r.end, r.score) for r in theirs]


DIAL_OUT = sorted({prefix for region in phone.REGIONS
                   if (metadata := phonenumbers.PhoneMetadata.metadata_for_region(region))
                   and (prefix := metadata.preferred_international_prefix
                        or metadata.international_prefix or "").isdigit()}
                  | {"014", "810", "0161"})  # Israel's, Russia's, New Zealand's: patterns
# a number of a region that shares its country code, or with a prefix that dials out of it
SHARED_OR_DIALLED: list[tuple[str, tuple[str, ...]]] = [
    ("(876) 523-0123", ("US",)), ("8 (7172) 58 12 34", ("RU",)), ("06 6981 2345", ("IT",)),
    ("79 12 34 56", ("NO",)), ("018 1234567", ("FI",)), ("0105 95 1234586", ("IL",))]


def phone_candidates(count: int, seed: int) -> list[str]:
    """Numbers near real ones of every region and type, as people write them: nationally
    formatted, with the country code but no plus or after a prefix that dials out of a
    country, digits only, a digit or two changed."""
    pick = random.Random(seed)
    examples = [number for region in phonenumbers.SUPPORTED_REGIONS
                for kind in phonenumbers.PhoneNumberType.values()
                if (number := phonenumbers.example_number_for_type(region, kind)) is not None]
    candidates: list[str] = []
    while len(candidates) < count:
        number = pick.choice(examples)
        national = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
        international = phonenumbers.format_number(
            number, phonenumbers.PhoneNumberFormat.E164).lstrip("+")
        written = pick.choice([national, international, re.sub(r"\D", "", national),
                               f"{pick.choice(DIAL_OUT)} {international}"])
        digits = [i for i, c in enumerate(written) if c.isdigit()]
        for i in pick.sample(digits, pick.choice([0, 1, 2])):
            written = written[:i] + str(pick.randrange(10)) + written[i + 1:]
        candidates.append(written)
    return candidates


def test_phone_regions_left_out_cheaply_are_those_libphonenumber_would_refuse(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Region by region: every region the cheap test leaves out is one in which
    libphonenumber finds the number invalid or a business line; and so the same scores."""
    cases: list[tuple[str, tuple[str, ...]]] = [
        (c, phone.REGIONS) for c in phone_candidates(4_000, seed=3)]
    cases += [(c, phone.NATIONAL_REGIONS["zh"]) for c in phone_candidates(1_000, seed=4)]
    cases += SHARED_OR_DIALLED + [(c, phone.REGIONS) for c, _ in SHARED_OR_DIALLED]

    def asked(candidate: str, regions: tuple[str, ...]) -> list[str]:
        return [region.code for region in phone._plausible_regions(
            "".join(filter(str.isdigit, candidate)), regions)]

    cheap = [(asked(c, regions), phone.phone_score.__wrapped__(c, regions)) for c, regions in cases]
    every_region_asked = [dataclasses.replace(r, personal=None) for r in phone._regions()]
    monkeypatch.setattr(phone, "_regions", lambda: every_region_asked)
    left_out = 0
    for (candidate, regions), (kept, score) in zip(cases, cheap, strict=True):
        for region in set(asked(candidate, regions)) - set(kept):
            left_out += 1
            assert not phone._valid(candidate, region), (candidate, region)
        assert phone.phone_score.__wrapped__(candidate, regions) == score, candidate
    assert left_out > len(cases)  # the cheap test does leave regions out
    found = sum(score is not None for _, score in cheap)
    assert min(found, len(cases) - found) >= 100  # numbers found, and numbers refused


def test_a_number_typed_without_parse_is_typed_as_libphonenumber_types_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where a number's digits are its national number as written, its type is read from them
    without libphonenumber's parse: the same answer as parse's, region by region."""
    pick = random.Random(6)
    cases = phone_candidates(2_000, seed=6) + [c for c, _ in SHARED_OR_DIALLED]
    cases += [f"1{pick.choice('3456789')}{pick.randrange(10**9):09d}" for _ in range(300)]
    cases += [f"{pick.randrange(200, 1000)}{pick.randrange(10**7):07d}" for _ in range(300)]
    cases += [f"{pick.randrange(10, 100)} {pick.randrange(10**4):04d} {pick.randrange(10**4):04d}"
              for _ in range(300)]
    # the country code in brackets: parse reads the number as dialled from abroad
    codes = ["1", "33", "44", "852", "86", "27"]
    cases += [f"(+{pick.choice(codes)}) {pick.randrange(10**8, 10**10)}" for _ in range(300)]
    cases += ["(+852) 5123 4567", "(+33) 6 12 34 56 78", "(+1) 2015550123"]
    every_region_asked = [dataclasses.replace(r, personal=None) for r in phone._regions()]
    monkeypatch.setattr(phone, "_regions", lambda: every_region_asked)
    parsed: list[str | None] = []
    real_valid = phone._valid

    def counted_valid(candidate: str, region: str | None) -> bool:
        parsed.append(region)
        return real_valid(candidate, region)

    monkeypatch.setattr(phone, "_valid", counted_valid)
    decided = valid = 0
    for candidate in cases:
        digits = "".join(filter(str.isdigit, candidate))
        if not 7 <= len(digits) <= 15 or candidate.startswith(("+", "00")):
            continue
        for region in phone._plausible_regions(digits, phone.REGIONS):  # as phone_score asks
            decided += 1
            answer = phone._valid_in(candidate, digits, region)
            assert answer == real_valid(candidate, region.code), (candidate, region.code)
            valid += answer
    assert decided - len(parsed) > decided // 3  # most decided without parse
    assert min(valid, decided - valid) >= 200  # valid numbers and invalid ones
