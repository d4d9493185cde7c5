"""Bulk writes: many records in one request (`POST /v1/records/batch`, `pgw records import`).

Each item is its own unit inside the request's one transaction: it runs in a SAVEPOINT, and an
item refused (invalid, no consent, scan out of time, rate limit) rolls back to it, keeping only
its audited denials, while the others stand. Small transactions per item would commit a
stored item before its neighbours are checked, and would cost a commit (an fsync) each. The
audit entries of every item are written by the one commit; if they cannot be written, nothing
of the batch is stored (the request fails as a whole), so no item is ever stored unaudited.

Free text is scanned for the whole batch before the transaction begins, through
`analyze_many` (one spaCy `pipe` per group of texts); each text keeps its own
PGW_PII_SCAN_SECONDS, and an item with a text that runs out of it is refused on its own.

The response carries no personal data (no storage view, no subject id): per item its
status, and the record's id, or a problem. It is kept as is for an `Idempotency-Key` retry.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.config import Settings
from app.errors import PROBLEM_BASE, GatewayError, Invalid
from app.pii.deadline import ScanTimeout
from app.pii.engine import Finding
from app.pii.service import analyze_many, get_engine
from app.policy.loader import Policy
from app.records import service, validation
from app.records.schemas import RecordIn
from app.schemas import StrictModel

MAX_ITEMS = 1_000
ROUTE = "POST /v1/records/batch"

# Spends one unit of the caller's rate limit for an item; the error when it is spent.
Allowance = Callable[[int], GatewayError | None]


class BatchIn(StrictModel):
    # items are checked one by one, so a malformed item fails alone
    records: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ITEMS)


def problem(exc: GatewayError) -> dict[str, Any]:
    """The RFC 9457 problem of a failed item, as the single-record endpoint would answer."""
    body: dict[str, Any] = {"type": PROBLEM_BASE + exc.type, "title": exc.title,
                            "status": exc.status, "detail": exc.detail}
    return body | exc.extra


def parse_item(raw: Any) -> RecordIn:
    """One item as `POST /v1/records` takes it; a 422 naming its fields otherwise."""
    try:
        return RecordIn.model_validate(raw)
    except ValidationError as exc:
        errors = [{"field": ".".join(str(p) for p in e["loc"]) or "body",
                   "reason": "unknown field" if e["type"] == "extra_forbidden" else e["msg"]}
                  for e in exc.errors()]
        raise Invalid(f"invalid record: {', '.join(e['field'] for e in errors[:5])}",
                      errors=errors) from None


def scan_all(policy: Policy, settings: Settings, items: Sequence[RecordIn | None],
             ) -> dict[str, list[Finding] | ScanTimeout]:
    """Findings of every free-text value of the batch, by text, in one pass through the
    engine. Items that fail their checks are skipped here and refused when written."""
    texts: dict[str, None] = {}
    for item in items:
        if item is None:
            continue
        try:
            checked = validation.check_record(policy, type_name=item.record_type,
                                              purpose=item.purpose, data=item.data)
        except GatewayError:
            continue
        spec = checked.record_type
        texts.update((value, None) for name, value in checked.values.items()
                     if spec.fields[name].scan_pii and isinstance(value, str) and value.strip())
    if not texts:
        return {}
    engine = get_engine(settings.nlp_model_en)
    found = analyze_many(engine, list(texts), time_limit=settings.pii_scan_seconds)
    return dict(zip(texts, found, strict=True))


def _scanner(scans: dict[str, list[Finding] | ScanTimeout]) -> Callable[[str], list[Finding]]:
    def scan(text: str) -> list[Finding]:
        found = scans.get(text, [])
        if isinstance(found, ScanTimeout):
            raise ScanTimeout(found.extra["limit_seconds"])
        return found

    return scan


@dataclass(frozen=True)
class Prepared:
    """The items parsed (or their 422) and their free text scanned: all a batch needs before
    its transaction, so no lock is held while the PII engine runs."""

    items: list[RecordIn | GatewayError]
    scans: dict[str, list[Finding] | ScanTimeout]


def prepare(policy: Policy, settings: Settings, raw_items: Sequence[Any]) -> Prepared:
    """Parse every item and scan the free text of the batch in one pass."""
    parsed: list[RecordIn | GatewayError] = []
    for raw in raw_items:
        try:
            parsed.append(parse_item(raw))
        except GatewayError as exc:
            parsed.append(exc)
    return Prepared(parsed, scan_all(policy, settings,
                                     [p if isinstance(p, RecordIn) else None for p in parsed]))


def create_many(session: Session, policy: Policy, keys: service.Keys, *, caller: Caller,
                prepared: Prepared, allow: Allowance | None = None) -> dict[str, Any]:
    """Write each item as `service.create` does, each in a savepoint; one result per item."""
    batch_keys = service.Keys(keyring=keys.keyring, hash_key=keys.hash_key,
                              scan=_scanner(prepared.scans))
    results = []
    for index, item in enumerate(prepared.items):
        refused = allow(index) if allow is not None and isinstance(item, RecordIn) else None
        outcome = item if isinstance(item, GatewayError) else refused or _write_one(
            session, policy, batch_keys, caller=caller, item=item)
        if isinstance(outcome, GatewayError):
            results.append({"index": index, "status": "error", "problem": problem(outcome)})
        else:
            results.append({"index": index, "status": "created", "record_id": outcome.record.id,
                            "findings": service._finding_counts(outcome.findings),
                            "dropped": audit.names(outcome.dropped), "flags": outcome.flags})
    created = sum(1 for r in results if r["status"] == "created")
    return {"created": created, "failed": len(results) - created, "results": results}


def _write_one(session: Session, policy: Policy, keys: service.Keys, *, caller: Caller,
               item: RecordIn) -> service.Written | GatewayError:
    """One item in a savepoint: stored with its audit entry, or rolled back keeping only its
    audited denials."""
    pending: list[audit.Draft] = list(session.info.get(audit.PENDING_KEY, []))
    savepoint = session.begin_nested()
    try:
        written = service.create(session, policy, keys, caller=caller,
                                 subject_id=item.subject_id, purpose=item.purpose,
                                 record_type=item.record_type, data=item.data)
    except GatewayError as exc:
        added = session.info.get(audit.PENDING_KEY, [])[len(pending):]
        savepoint.rollback()
        session.info[audit.PENDING_KEY] = pending + [
            d for d in added if d.outcome is not audit.Outcome.ALLOWED]
        return exc
    savepoint.commit()
    return written
