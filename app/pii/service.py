"""Scanning and redacting text; the engine is loaded once per process and shared."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from presidio_anonymizer import AnonymizerEngine
from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

from app.pii import operators
from app.pii.coalesce import Coalescer
from app.pii.deadline import ScanTimeout
from app.pii.engine import DEFAULT_THRESHOLD, Finding, PiiEngine, new_scan_process
from app.pii.schemas import OperatorSpec

logger = logging.getLogger(__name__)

_coalescers: dict[str, Coalescer] = {}  # per English model: its engine, batching its scans
_engines_lock = threading.Lock()
_anonymizer = AnonymizerEngine()  # type: ignore[no-untyped-call]


def _coalescer(model: str) -> Coalescer:
    with _engines_lock:
        if model not in _coalescers:
            _coalescers[model] = Coalescer(PiiEngine(en_model=model))
        return _coalescers[model]


def get_engine(model: str) -> PiiEngine:
    """The process's engine for this English model, loaded on first use."""
    return _coalescer(model).engine


def start_engine(model: str, *, parallel_min_chars: int, wait_seconds: float = 30) -> PiiEngine:
    """Load the process's engine and start its scan helper, both loading their models at once
    (on two cores, as long as one of them); return once both have, the helper at most
    `wait_seconds` (a slower one goes on loading; scans do without it meanwhile). A helper that
    loads after the process starts serving takes a core from its first requests."""
    with _engines_lock:
        loaded = _coalescers.get(model)
    helper = None
    if loaded is None or loaded.engine.scan_process is None:
        helper = new_scan_process(model, parallel_min_chars)
    try:
        engine = get_engine(model)
    except BaseException:
        if helper is not None:
            helper.close()
        raise
    engine.start_scan_process(parallel_min_chars, started=helper)
    helping = engine.scan_process
    if helping is not None and helping.pid is not None and not helping.wait_ready(wait_seconds):
        if helping.refused is not None:
            logger.error("the PII scan helper did not start (%s); long texts are read in this "
                         "process alone until another one has", helping.refused)
        else:
            logger.warning("the PII scan helper has not loaded its models after %s s; serving "
                           "without it until it has", wait_seconds)
    return engine


def scan_text(model: str, text: str, *, language: str = "auto",
              entities: Sequence[str] | None = None, threshold: float = DEFAULT_THRESHOLD,
              time_limit: float | None = None) -> tuple[str, list[Finding]]:
    """The language and findings of one text, as `PiiEngine.analyze` gives them, scanned in one
    batch with the short texts other threads of this process scan at the same time
    (`app.pii.coalesce`)."""
    return _coalescer(model).scan(text, language=language, entities=entities,
                                  threshold=threshold, time_limit=time_limit)


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


def analyze_many(engine: PiiEngine, texts: Sequence[str], *, time_limit: float | None = None,
                 group: int = 32) -> list[list[Finding] | ScanTimeout]:
    """Findings in each of many texts (language detected per text), or the ScanTimeout of a
    text that could not be scanned within `time_limit` seconds of its own.

    Texts go through `analyze_batch` `group` at a time, so spaCy runs once per group of
    windows; a group gets `time_limit` times its size. A group that runs out of time is scanned
    again text by text, each with `time_limit`, so one slow text fails alone.
    """
    results: list[list[Finding] | ScanTimeout] = []
    for first in range(0, len(texts), group):
        chunk = list(texts[first:first + group])
        limit = None if time_limit is None else time_limit * len(chunk)
        try:
            scanned = engine.analyze_batch(chunk, languages=["auto"] * len(chunk),
                                           time_limit=limit)
            results.extend(found for _, found in scanned)
            continue
        except ScanTimeout:
            pass
        for text in chunk:
            try:
                results.append(engine.analyze(text, time_limit=time_limit)[1])
            except ScanTimeout as exc:
                results.append(exc)
    return results
