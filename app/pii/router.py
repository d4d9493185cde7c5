from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from fastapi import APIRouter, Depends, Request

from app.audit import service as audit
from app.auth.guard import Caller, RequireScope, spend_characters
from app.auth.scopes import Scope
from app.config import Settings
from app.deps import RuntimeDep, SessionDep, SettingsDep
from app.errors import Invalid, PayloadTooLarge, problems
from app.pii import operators
from app.pii import service as pii
from app.pii.deadline import ScanTimeout
from app.pii.engine import Finding, PiiEngine, UnsupportedValue
from app.pii.schemas import (
    BatchScanRequest,
    BatchScanResponse,
    EntityOut,
    RedactedEntityOut,
    RedactRequest,
    RedactResponse,
    ScanRequest,
    ScanResponse,
)

router = APIRouter(prefix="/v1/pii", tags=["pii"])
Scanner = Annotated[Caller, Depends(RequireScope(Scope.PII_SCAN))]


def _engine(settings: Settings) -> PiiEngine:
    return pii.get_engine(settings.nlp_model_en)


def _check(settings: Settings, engine: PiiEngine, texts: Sequence[str], languages: Sequence[str],
           entities: Sequence[str] | None, field_prefix: str = "") -> None:
    limit = settings.pii_max_chars
    for index, text in enumerate(texts):
        if len(text) > limit:
            where = f"{field_prefix}{index}.text" if field_prefix else "text"
            raise PayloadTooLarge(f"{where} has {len(text)} characters; the limit is {limit} "
                                  "(PGW_PII_MAX_CHARS)", limit=limit, field=where)
    for index, language in enumerate(languages):
        try:
            engine.check(language=language)
        except UnsupportedValue as exc:
            where = f"{field_prefix}{index}.language" if field_prefix else "language"
            raise Invalid(str(exc), field=where, supported=exc.supported) from None
    try:
        engine.check(entities=entities)
    except UnsupportedValue as exc:
        raise Invalid(str(exc), field="entities", supported=exc.supported) from None


def _entities(findings: list[Finding]) -> list[EntityOut]:
    return [EntityOut(type=f.type, start=f.start, end=f.end, score=f.score,
                      recognizer=f.recognizer) for f in findings]


@router.post("/scan", response_model=ScanResponse,
             responses=problems(ScanTimeout))
def scan(body: ScanRequest, session: SessionDep, caller: Scanner, settings: SettingsDep,
         request: Request) -> ScanResponse:
    """Find personal data in free text; offsets index the text exactly as sent."""
    engine = _engine(settings)
    _check(settings, engine, [body.text], [body.language], body.entities)
    spend_characters(request, session, caller, len(body.text))
    language, findings = pii.scan_text(settings.nlp_model_en, body.text,
                                       language=body.language, entities=body.entities,
                                       threshold=body.score_threshold,
                                       time_limit=settings.pii_scan_seconds)
    audit.record(session, caller=caller, action="pii.scanned",
                 details={"language": language, "chars": len(body.text),
                          "found": pii.counts(findings)})
    return ScanResponse(language=language, entities=_entities(findings))


@router.post("/scan/batch", response_model=BatchScanResponse,
             responses=problems(ScanTimeout))
def scan_batch(body: BatchScanRequest, session: SessionDep, caller: Scanner,
               settings: SettingsDep, request: Request) -> BatchScanResponse:
    """Scan up to 1000 texts in one call; results come back in the order sent."""
    engine = _engine(settings)
    texts = [item.text for item in body.items]
    languages = [item.language for item in body.items]
    _check(settings, engine, texts, languages, body.entities, field_prefix="items.")
    spend_characters(request, session, caller, sum(map(len, texts)))
    results = engine.analyze_batch(texts, languages=languages, entities=body.entities,
                                   threshold=body.score_threshold,
                                   time_limit=settings.pii_scan_seconds)
    everything = [f for _, findings in results for f in findings]
    audit.record(session, caller=caller, action="pii.batch_scanned",
                 details={"items": len(texts), "chars": sum(map(len, texts)),
                          "found": pii.counts(everything)})
    return BatchScanResponse(results=[ScanResponse(language=lang, entities=_entities(findings))
                                      for lang, findings in results])


@router.post("/redact", response_model=RedactResponse,
             responses=problems(ScanTimeout))
def redact(body: RedactRequest, session: SessionDep, caller: Scanner, runtime: RuntimeDep,
           request: Request) -> RedactResponse:
    """Find personal data and replace each finding by its entity type's operator."""
    settings = runtime.settings
    engine = _engine(settings)
    _check(settings, engine, [body.text], [body.language], body.entities)
    spend_characters(request, session, caller, len(body.text))
    for key in body.operators:
        if key != "DEFAULT" and key not in engine.supported_entities:
            raise Invalid(f"operators: unknown entity type {key!r}", field=f"operators.{key}",
                          supported=["DEFAULT", *engine.supported_entities])
    language, findings = pii.scan_text(settings.nlp_model_en, body.text,
                                       language=body.language, entities=body.entities,
                                       threshold=body.score_threshold,
                                       time_limit=settings.pii_scan_seconds)
    context = operators.OperatorContext(hash_key=runtime.pii_hash_key)
    try:
        result = pii.redact(body.text, findings, body.operators, context)
    except operators.OperatorError as exc:
        raise Invalid(str(exc), field="operators") from None
    audit.record(session, caller=caller, action="pii.redacted",
                 details={"language": language, "chars": len(body.text),
                          "found": pii.counts(findings),
                          "operators": {kind: spec.type for kind, spec in body.operators.items()}})
    return RedactResponse(language=language, text=result.text, entities=[
        RedactedEntityOut(type=f.type, start=f.start, end=f.end, score=f.score,
                          recognizer=f.recognizer, operator=op, output_start=start,
                          output_end=end)
        for f, op, start, end in result.findings])
