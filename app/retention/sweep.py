"""The retention sweep. `plan` says what a run would do; `run` does it in batches, each batch
one transaction with its audit entry, and the run as a whole audited with its counts.

- A record past `retention_until` is deleted, or de-identified: fields that identify or
  contact the person, free text and protected values are dropped, dates generalised to the
  year, blind indexes deleted, and the subject id replaced by a random one, so what remains no
  longer links to the person.
- A field past its own deadline is removed from the record.
- Withdrawing consent starts the countdown of records collected on that consent: the sweep
  sets their deadline from the withdrawal's time (or keeps an earlier one).
- A legal hold on the subject or the record type keeps the record as it is.
"""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import utcnow
from app.consent import service as consent
from app.dsr import holds
from app.policy.loader import Policy
from app.policy.models import DataField, FieldType, LegalBasis, RecordType, RetentionTrigger
from app.records.models import BlindIndex, Record
from app.records.service import drop_fields
from app.runtime import Transaction

BATCH = 500
CALLER = Caller.system("retention")
IDENTIFYING_TYPES = (FieldType.NAME, FieldType.EMAIL, FieldType.PHONE, FieldType.CN_RESIDENT_ID,
                     FieldType.ADDRESS, FieldType.FREE_TEXT)
IDENTIFYING_CATEGORIES = ("identity", "contact", "communications")


@dataclass
class Report:
    counts: dict[str, Counter[str]] = field(default_factory=dict)  # record type -> action -> n

    def add(self, record_type: str, action: str, n: int = 1) -> None:
        self.counts.setdefault(record_type, Counter())[action] += n

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {name: dict(sorted(c.items())) for name, c in sorted(self.counts.items())}

    def total(self, action: str) -> int:
        return sum(c[action] for c in self.counts.values())


def field_rule(spec: DataField) -> str:
    if spec.deidentify:
        return spec.deidentify
    if spec.protection != "clear" or spec.scan_pii or spec.type in IDENTIFYING_TYPES or \
            spec.category in IDENTIFYING_CATEGORIES:
        return "drop"
    return "generalize" if spec.type is FieldType.DATE else "keep"


def _generalised(spec: DataField, value: Any) -> Any:
    text = str(value)
    if spec.type is FieldType.DATE:
        return text[:4]
    return text[:3] + "*" * max(0, len(text) - 3)


def deidentify(session: Session, spec: RecordType | None, record: Record, now: datetime) -> None:
    data = {}
    for name, value in record.data.items():
        field_spec = spec.fields.get(name) if spec else None
        rule = field_rule(field_spec) if field_spec else "drop"
        if rule == "keep":
            data[name] = value
        elif rule == "generalize" and field_spec is not None:
            data[name] = _generalised(field_spec, value)
    session.execute(delete(BlindIndex).where(BlindIndex.record_id == record.id))
    record.data, record.originals, record.field_retention = data, {}, {}
    record.subject_id = f"deidentified:{secrets.token_hex(12)}"
    record.retention_until, record.deidentified_at = None, now


def _consent_countdowns(session: Session, policy: Policy, report: Report, apply: bool) -> None:
    """Records collected on consent are due after the consent is withdrawn: their type's
    period if the type is kept "until consent is withdrawn", else the purpose's
    `after_withdrawal_days`; or at their own deadline if that comes first."""
    purposes = [name for name, purpose in policy.body.purposes.items()
                if purpose.legal_basis is LegalBasis.CONSENT]
    query = select(Record).where(Record.purpose.in_(purposes), Record.deidentified_at.is_(None))
    for batch in _batches(session, query):
        for record in batch:
            spec = policy.body.record_types.get(record.record_type)
            latest = consent.current(session, record.subject_id, record.purpose)
            if spec is None or latest is None or latest.event != "withdrawn":
                continue
            days = spec.retention.days if \
                spec.retention.trigger is RetentionTrigger.CONSENT_WITHDRAWAL else \
                policy.body.purposes[record.purpose].after_withdrawal_days
            due = latest.recorded_at + timedelta(days=days)
            if record.retention_until is None or due < record.retention_until:
                if apply:
                    record.retention_until = due
                report.add(record.record_type, "countdown_started")


def _batches(session: Session, query: Any) -> Iterator[list[Record]]:
    after = ""
    while True:
        batch = list(session.scalars(query.where(Record.id > after).order_by(Record.id)
                                     .limit(BATCH)))
        if not batch:
            return
        yield batch
        after = batch[-1].id


def _sweep(session: Session, policy: Policy, now: datetime, *, apply: bool) -> Report:
    report = Report()
    _consent_countdowns(session, policy, report, apply)
    held_subjects, held_types = holds.held_subjects(session, now), holds.held_types(session, now)

    def held(record: Record) -> bool:
        return record.subject_id in held_subjects or record.record_type in held_types

    due = select(Record).where(Record.retention_until <= now, Record.deidentified_at.is_(None))
    for batch in _batches(session, due):
        for record in batch:
            spec = policy.body.record_types.get(record.record_type)
            if held(record):
                report.add(record.record_type, "held")
                continue
            # kept only because a law said so after the subject was erased: now it goes
            action = str(spec.retention.action) if spec and record.erased_at is None \
                else "delete"
            if apply:
                if action == "delete":
                    session.execute(delete(BlindIndex).where(BlindIndex.record_id == record.id))
                    session.delete(record)
                else:
                    deidentify(session, spec, record, now)
            report.add(record.record_type, action)
        if apply:
            session.flush()
    fields = select(Record).where(Record.deidentified_at.is_(None))
    for batch in _batches(session, fields):
        for record in batch:
            expired = sorted(n for n, when in record.field_retention.items()
                             if datetime.fromisoformat(when) <= now)
            if not expired:
                continue
            if held(record):
                report.add(record.record_type, "fields_held", len(expired))
                continue
            if apply:
                drop_fields(session, record, expired)
            report.add(record.record_type, "fields_removed", len(expired))
    return report


def plan(transaction: Transaction, policy: Policy, *, now: datetime | None = None) -> Report:
    """What the next run would do, changing nothing."""
    with transaction() as session:
        report = _sweep(session, policy, now or utcnow(), apply=False)
        session.rollback()
    return report


def run(transaction: Transaction, policy: Policy, *, caller: Caller = CALLER,
        now: datetime | None = None) -> Report:
    """Apply retention in one transaction with its audit entry: all of it or none."""
    now = now or utcnow()
    with transaction() as session:
        report = _sweep(session, policy, now, apply=True)
        audit.record(session, caller=caller, action="retention.run",
                     details={"at": now.isoformat(), "counts": report.as_dict()})
    return report
