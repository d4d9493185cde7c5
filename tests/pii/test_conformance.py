"""Presidio's own recognizer unit tests (ported as data) run through our engine."""

from __future__ import annotations

from app.pii.engine import PiiEngine
from tests.pii.conformance import Case, Spans, failures, load_cases

REQUIRED_PASS_RATE = 0.98


def engine_spans(engine: PiiEngine, case: Case) -> Spans:
    _, findings = engine.analyze(case.text, language="en", entities=[case.entity],
                                 threshold=case.threshold)
    return sorted((f.start, f.end) for f in findings if f.type == case.entity)


def test_every_ported_entity_type_is_supported(engine: PiiEngine) -> None:
    assert {case.entity for case in load_cases()} <= set(engine.supported_entities)


def test_presidio_conformance(engine: PiiEngine) -> None:
    cases = load_cases()
    wrong = failures(cases, lambda case: engine_spans(engine, case))
    rate = 1 - len(wrong) / len(cases)
    report = "\n".join(f"{case.source} {case.entity} {case.text!r}: expected {case.count} "
                       f"{list(case.spans)}, found {found}" for case, found in wrong)
    assert rate >= REQUIRED_PASS_RATE, f"pass rate {rate:.3f}, failing cases:\n{report}"
