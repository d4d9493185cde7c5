"""PERSON and LOCATION on real text (the corpora of bench/pii_corpora.py): our engine against
Presidio's default AnalyzerEngine on the same texts, in one run; and Presidio's own recognizer
unit-test cases (tests/pii/conformance) through both.

Each engine runs in a fresh process of its own, one after the other, so that its peak resident
memory is its own and the two never share the two cores. Speed is CPU seconds (all threads of that
process) per 1,000 characters, measured after a warm-up on each corpus's first texts.

Scoring is entity-level and counts PERSON and LOCATION only; predictions of other types are
dropped. A gold entity is found when a prediction of the same type overlaps at least half of the
shorter span (the rule of the generated sets). That rule lets one prediction covering a whole
clause find every name in it (Presidio's English model does this on Chinese text), so two
stricter rules are reported beside it: at least half of the longer span, and equal spans.
A prediction that finds nothing is a false positive unless it overlaps a span whose label the
corpus marks as neutral (bench/pii_corpora.py says which and why).
"""

from __future__ import annotations

import multiprocessing
import resource
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.pii_corpora import CORPORA, SCORED, Document, load, split_path

DEFAULT_LIMIT = 1500
ENGINES = ("pgw", "presidio-default")
WARM_UP = 20
CHUNK = 500  # texts per analyze_batch call (the API takes up to 1000)
Prediction = list[tuple[str, int, int]]


@dataclass(frozen=True)
class EngineRun:
    predictions: dict[str, list[Prediction]]
    cpu_seconds: dict[str, float]
    peak_rss_mb: float  # measured before the conformance cases run
    conformance: list[bool]  # per case of _cases(), in order


def choose_splits(root: Path, split: str | None) -> dict[str, str]:
    """Corpus -> split to evaluate: `split` where it exists, else (no --split) test, else dev."""
    chosen = {}
    for name in CORPORA:
        candidates = [split] if split else ["test", "dev"]
        found = [s for s in candidates if split_path(root, name, s).is_file()]
        if found:
            chosen[name] = found[0]
    return chosen


# -- running each engine in its own process --------------------------------------------------

Predict = Callable[[Sequence[str]], list[Prediction]]
FindCase = Callable[[Any], list[tuple[int, int]]]  # a conformance case -> spans of its type


def _presidio(model: str) -> tuple[Predict, FindCase]:
    from bench.pii_eval import presidio_analyzer

    analyzer = presidio_analyzer(model)

    def predict(texts: Sequence[str]) -> list[Prediction]:
        return [[(r.entity_type, r.start, r.end) for r in analyzer.analyze(t, language="en")]
                for t in texts]

    def find(case: Any) -> list[tuple[int, int]]:
        results = analyzer.analyze(case.text, language="en", entities=[case.entity],
                                   score_threshold=case.threshold)
        return sorted((r.start, r.end) for r in results if r.entity_type == case.entity)

    return predict, find


def _ours(model: str) -> tuple[Predict, FindCase]:
    from app.pii.service import get_engine

    pgw = get_engine(model)

    def predict(texts: Sequence[str]) -> list[Prediction]:
        out: list[Prediction] = []
        for i in range(0, len(texts), CHUNK):
            batch = texts[i:i + CHUNK]
            results = pgw.analyze_batch(batch, languages=["auto"] * len(batch))
            out += [[(f.type, f.start, f.end) for f in findings] for _, findings in results]
        return out

    def find(case: Any) -> list[tuple[int, int]]:
        _, findings = pgw.analyze(case.text, language="en", entities=[case.entity],
                                  threshold=case.threshold)
        return sorted((f.start, f.end) for f in findings if f.type == case.entity)

    return predict, find


def _run_engine(engine: str, model: str, texts: dict[str, list[str]]) -> EngineRun:
    from bench.pii_eval import _kind

    predict, find = (_presidio if engine == "presidio-default" else _ours)(model)
    predictions, cpu = {}, {}
    for name, corpus_texts in texts.items():
        predict(corpus_texts[:WARM_UP])
        started = time.process_time()
        found = predict(corpus_texts)
        cpu[name] = time.process_time() - started
        predictions[name] = [[(_kind(k), s, e) for k, s, e in spans] for spans in found]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return EngineRun(predictions, cpu, rss, [case.passes(find(case)) for case in _cases()])


def run_engine(engine: str, model: str, texts: dict[str, list[str]]) -> EngineRun:
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        return pool.submit(_run_engine, engine, model, texts).result()


def _cases() -> list[Any]:
    """Presidio's recognizer unit-test cases as ported to tests/pii/conformance, if there."""
    try:
        from tests.pii.conformance import load_cases
    except ImportError:
        return []
    return load_cases()


# -- scoring ----------------------------------------------------------------------------------

def _overlap(a: tuple[int, int], b: tuple[int, int], *, of_longer: bool = False) -> bool:
    length = (max if of_longer else min)(a[1] - a[0], b[1] - b[0])
    return length > 0 and min(a[1], b[1]) - max(a[0], b[0]) >= length / 2


def _overlap_of_longer(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return _overlap(a, b, of_longer=True)  # a prediction covering a whole clause finds nothing


def _equal(a: tuple[int, int], b: tuple[int, int]) -> bool:
    return a == b


RULES: dict[str, Callable[[tuple[int, int], tuple[int, int]], bool]] = {
    "overlap": _overlap,  # half of the shorter span: the generated sets' rule
    "longer": _overlap_of_longer,
    "exact": _equal,
}


def score(documents: Sequence[Document], predictions: Sequence[Prediction],
          neutral: frozenset[str], *, rule: str) -> dict[str, Counter[str]]:
    same = RULES[rule]
    tally: dict[str, Counter[str]] = {k: Counter() for k in ("tp", "fp", "fn", "gold")}
    for doc, predicted in zip(documents, predictions, strict=True):
        gold = [(k, s, e) for k, s, e in doc.spans if k in SCORED]
        ignored = [(s, e) for k, s, e in doc.spans if k in neutral]
        preds = {(k, s, e) for k, s, e in predicted if k in SCORED}
        for kind, start, end in gold:
            tally["gold"][kind] += 1
            found = any(p[0] == kind and same((start, end), (p[1], p[2])) for p in preds)
            tally["tp" if found else "fn"][kind] += 1
        for kind, start, end in preds:
            matched = any(g[0] == kind and same((start, end), (g[1], g[2])) for g in gold)
            if not matched and not any(_overlap((start, end), span) for span in ignored):
                tally["fp"][kind] += 1
    return tally


def prf(tally: dict[str, Counter[str]], kind: str | None = None) -> tuple[float, float, float]:
    def total(key: str) -> int:
        return tally[key][kind] if kind else sum(tally[key].values())

    tp, fp_, fn = total("tp"), total("fp"), total("fn")
    precision = tp / (tp + fp_) if tp + fp_ else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


def _cell(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.3f}" for v in values)


# -- the whole evaluation ---------------------------------------------------------------------

def evaluate(root: Path, *, split: str | None, limit: int, model: str,
             corpora: Sequence[str] | None = None,
             our_model: str = "pgw-en-ner") -> dict[str, Any]:
    """Score both engines; Presidio on spaCy's `model`, ours on `our_model` (its default)."""
    splits = {n: s for n, s in choose_splits(root, split).items() if not corpora or n in corpora}
    documents = {n: load(root, n, s, limit or None) for n, s in splits.items()}
    texts = {n: [d.text for d in docs] for n, docs in documents.items()}
    runs = {engine: run_engine(engine, model if engine == "presidio-default" else our_model,
                               texts) for engine in ENGINES}
    rows = []
    for name, docs in documents.items():
        neutral = CORPORA[name].neutral
        chars = sum(len(t) for t in texts[name])
        row: dict[str, Any] = {"corpus": name, "split": splits[name], "texts": len(docs),
                               "characters": chars}
        for engine, run in runs.items():
            for rule in RULES:
                tally = score(docs, run.predictions[name], neutral, rule=rule)
                row[f"{engine} {rule}"] = {"micro": prf(tally), "gold": dict(tally["gold"]),
                                           **{kind: prf(tally, kind) for kind in SCORED}}
            row[f"{engine} cpu_s_per_kchar"] = run.cpu_seconds[name] / chars * 1000
        rows.append(row)
    missing = [f"{n} ({split or 'test/dev'}; github.com/{CORPORA[n].repo})"
               for n in corpora or CORPORA if n not in splits]
    return {"rows": rows, "missing": missing, "limit": limit, "model": model,
            "our_model": our_model,
            "peak_rss_mb": {e: r.peak_rss_mb for e, r in runs.items()},
            "conformance": _conformance_summary(runs)}


def _conformance_summary(runs: dict[str, EngineRun]) -> dict[str, dict[str, list[int]]]:
    """Entity type -> engine -> [cases passed, cases]."""
    summary: dict[str, dict[str, list[int]]] = {}
    for case_index, case in enumerate(_cases()):
        for engine, run in runs.items():
            tally = summary.setdefault(case.entity, {}).setdefault(engine, [0, 0])
            tally[0] += run.conformance[case_index]
            tally[1] += 1
    return summary


def print_report(result: dict[str, Any]) -> None:
    rows = result["rows"]
    print("\n### Real text: PERSON + LOCATION, micro P / R / F1\n")
    print("A gold entity is found by a prediction of its type that overlaps at least half of the "
          "shorter span (the generated sets' rule).\n")
    print("| corpus | split | texts | ours P / R / F1 | Presidio P / R / F1 "
          "| CPU s per 1,000 chars, ours / Presidio | speed ratio |")
    print("|---|---|---:|---|---|---|---:|")
    for row in rows:
        ours, theirs = row["pgw cpu_s_per_kchar"], row["presidio-default cpu_s_per_kchar"]
        print(f"| {row['corpus']} | {row['split']} | {row['texts']} "
              f"| {_cell(row['pgw overlap']['micro'])} "
              f"| {_cell(row['presidio-default overlap']['micro'])} "
              f"| {ours:.4f} / {theirs:.4f} | {theirs / ours:.2f}x |")
    print("\n### Stricter matching, micro P / R / F1\n")
    print("Exact: the same start and end. Half of the longer span: a prediction covering a whole "
          "clause no longer finds every name in it.\n")
    print("| corpus | split | ours exact | Presidio exact | ours half-of-longer "
          "| Presidio half-of-longer |")
    print("|---|---|---|---|---|---|")
    for row in rows:
        print(f"| {row['corpus']} | {row['split']} "
              + " ".join(f"| {_cell(row[f'{engine} {rule}']['micro'])}"
                         for rule in ("exact", "longer") for engine in ENGINES) + " |")
    print("\n### By type, P / R / F1 (half of the shorter span; exact)\n")
    print("| corpus | type | gold | ours | Presidio | ours exact | Presidio exact |")
    print("|---|---|---:|---|---|---|---|")
    for row in rows:
        for kind in SCORED:
            print(f"| {row['corpus']} | {kind} | {row['pgw overlap']['gold'].get(kind, 0)} "
                  + " ".join(f"| {_cell(row[f'{engine} {rule}'][kind])}"
                             for rule in ("overlap", "exact") for engine in ENGINES) + " |")
    rss = result["peak_rss_mb"]
    print(f"\nOurs = privacy-gateway `get_engine({result['our_model']!r})`, language `auto`; "
          f"Presidio = default `AnalyzerEngine` with spaCy's `{result['model']}`, language "
          f"`en`. "
          f"Peak resident memory of each engine's own process (engine loaded, all texts "
          f"scanned): ours {rss['pgw']:.0f} MB, Presidio {rss['presidio-default']:.0f} MB. "
          f"Speed ratio = Presidio's CPU seconds per 1,000 characters / ours (above 1: ours "
          f"is faster). Texts: the first {result['limit'] or 'all'} of each split.")
    if result["missing"]:
        print(f"Not evaluated, no converted file (get the originals from the repository named, "
              f"then run bench/pii_corpora.py): {', '.join(result['missing'])}.")
    _print_conformance(result["conformance"])


def _print_conformance(summary: dict[str, dict[str, list[int]]]) -> None:
    if not summary:
        print("\nConformance cases: tests/pii/conformance is not there; skipped.")
        return
    print("\n### Conformance: Presidio's recognizer unit-test cases (tests/pii/conformance), "
          "share passed\n")
    print("Ours: `analyze(text, language='en', entities=[type], threshold=case threshold)`; "
          "Presidio: the same through `score_threshold`. A case passes with the expected "
          "number of findings of its type at the expected spans.\n")
    print("| entity | cases | ours | Presidio |")
    print("|---|---:|---:|---:|")
    totals = {engine: [0, 0] for engine in ENGINES}
    for entity, by_engine in sorted(summary.items()):
        cells = []
        for engine in ENGINES:
            passed, cases = by_engine[engine]
            totals[engine][0] += passed
            totals[engine][1] += cases
            cells.append(f"{passed / cases:.3f}")
        print(f"| {entity} | {by_engine[ENGINES[0]][1]} | " + " | ".join(cells) + " |")
    print(f"| **all** | {totals[ENGINES[0]][1]} | "
          + " | ".join(f"**{p / c:.3f}**" for p, c in totals.values()) + " |")
