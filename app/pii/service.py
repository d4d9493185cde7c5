"""Scanning and redacting text; the engine is loaded once per process and shared."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

from app.pii import operators
from app.pii.engine import Finding, PiiEngine
from app.pii.schemas import OperatorSpec

_engines: dict[str, PiiEngine] = {}
_engines_lock = threading.Lock()
_anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]


def get_engine(model: str) -> PiiEngine:
    """The process's engine for this English model, loaded on first use."""
    with _engines_lock:
        if model not in _engines:
            _engines[model] = PiiEngine(en_model=model)
        return _engines[model]


def counts(findings: Sequence[Finding]) -> dict[str, int]:
    return dict(Counter(f.type for f in findings))


@dataclass(frozen=True)
class Redaction:
    text: str
    findings: list[tuple[Finding, str, int, int]]  # finding, operator, output start, output end


def redact(text: str, findings: Sequence[Finding], specs: Mapping[str, OperatorSpec],
           context: operators.OperatorContext) -> Redaction:
    """Apply each entity type's operator (or DEFAULT's) to its findings in `text`."""
    default = specs.get("DEFAULT", OperatorSpec(type="replace"))
    chosen = {f.type: specs.get(f.type, default) for f in findings}
    for entity, spec in chosen.items():  # fail before changing anything
        if spec.type not in operators.REGISTRY:
            raise operators.OperatorError(
                f"unknown operator {spec.type!r} for {entity}; supported: "
                f"{', '.join(sorted(operators.REGISTRY))}")

    def operate(entity: str, spec: OperatorSpec) -> OperatorConfig:
        params = spec.params()
        return OperatorConfig("custom", {"lambda": lambda value: operators.apply(
            spec.type, value, entity, params, context)})

    result = _anonymizer.anonymize(
        text=text,
        analyzer_results=[RecognizerResult(f.type, f.start, f.end, f.score) for f in findings],
        operators={entity: operate(entity, spec) for entity, spec in chosen.items()},
        merge_entities_with_spaces=False,
    )
    placed = sorted(result.items, key=lambda item: item.start)
    ordered = sorted(findings, key=lambda f: f.start)
    return Redaction(text=result.text, findings=[
        (finding, chosen[finding.type].type, item.start, item.end)
        for finding, item in zip(ordered, placed, strict=True)
    ])
