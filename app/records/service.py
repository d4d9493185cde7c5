"""Writing, rectifying and deleting stored records. Reading them is in `reading.py`."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.auth.scopes import Scope
from app.clock import iso_or_none, utcnow
from app.consent.decision import Decision
from app.dsr.service import was_erased
from app.errors import Conflict, Invalid, NotFound
from app.keys.keyring import Keyring
from app.keys.rotation import register_reencryptor
from app.keys.shred import LegalHoldActive, hold_reason
from app.policy.loader import Policy
from app.policy.models import RecordType
from app.records import storage, validation
from app.records.access import hold_consent, refusal_audited, require_consent
from app.records.models import BlindIndex, Record
from app.records.validation import check_record
from app.webhooks import outbox
from app.webhooks.events import Event


class RecordClosed(Conflict):
    type, title = "record-closed", "Record closed"


@dataclass
class Written:
    record: Record
    findings: list[dict[str, Any]]
    dropped: list[str]
    decision: Decision
    removed: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        record = self.record
        return {"record_id": record.id, "subject_id": record.subject_id,
                "record_type": record.record_type, "data": record.data,
                "findings": self.findings, "dropped": self.dropped,
                "retention_until": iso_or_none(record.retention_until),
                "field_retention": record.field_retention,
                "legal_basis": self.decision.legal_basis, "flags": self.flags}


@dataclass(frozen=True)
class Keys:
    """What protecting values needs: the keyring, the keyed-hash key and the PII scanner."""

    keyring: Keyring
    hash_key: bytes | None
    scan: storage.Scanner


def _index_rows(record: Record, indexes: list[tuple[str, str, str]]) -> list[BlindIndex]:
    return [BlindIndex(record_id=record.id, subject_id=record.subject_id, field=name, kind=kind,
                       digest=digest) for name, kind, digest in indexes]


def _sensitive(spec: RecordType, names: Any) -> bool:
    return any(spec.fields[name].sensitive for name in names)


def create(session: Session, policy: Policy, keys: Keys, *, caller: Caller, subject_id: str,
           purpose: str, record_type: str, data: dict[str, Any]) -> Written:
    """Check, protect and store a record; the record and its audit entry commit together."""
    with refusal_audited(session, caller=caller, action="record.write_refused", purpose=purpose,
                         subject_id=subject_id, record_type=record_type):
        checked = check_record(policy, type_name=record_type, purpose=purpose, data=data)
    spec = checked.record_type
    scans = storage.scan_texts(spec, checked.values, keys.scan)
    decision = require_consent(session, policy, caller=caller, subject_id=subject_id,
                               purpose=purpose, sensitive=_sensitive(spec, checked.values),
                               action="record.write_refused", record_type=record_type)
    now = utcnow()
    record_id = f"rec_{secrets.token_hex(12)}"
    stored = storage.protect_values(session, keys.keyring, subject_id=subject_id,
                                    context=storage.record_context(record_id), spec=spec,
                                    values=checked.values, hash_key=keys.hash_key, scans=scans)
    record = Record(id=record_id, subject_id=subject_id, record_type=record_type,
                    purpose=purpose, data=stored.data, originals=stored.originals,
                    created_by=caller.sub, created_at=now, updated_at=now,
                    retention_until=storage.deadline(spec.retention, collected=now, now=now),
                    field_retention=storage.field_deadlines(spec, stored.data, collected=now,
                                                            now=now),
                    restricted_at=None)
    session.add(record)
    session.flush()
    session.add_all(_index_rows(record, stored.indexes))
    # an erased subject written again (a returning customer, or a system that missed the
    # erasure event): allowed, flagged to the caller and in the audit log
    flags = ["subject-previously-erased"] if was_erased(session, keys.keyring, subject_id) \
        else []
    audit.record(session, caller=caller, action="record.created", purpose=purpose,
                 subject_id=subject_id, resource=f"record:{record_id}",
                 details={"record_type": record_type, "fields": sorted(stored.data),
                          "dropped": checked.dropped, "legal_basis": decision.legal_basis,
                          "findings": _finding_counts(stored.findings), "flags": flags})
    return Written(record, stored.findings, checked.dropped, decision, flags=flags)


def _finding_counts(findings: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for finding in findings:
        counts[finding["type"]] = counts.get(finding["type"], 0) + 1
    return counts


def for_writer(session: Session, *, caller: Caller, record_id: str, refused: str,
               lock: bool = False) -> Record:
    """The record, if this caller wrote it or manages data-subject requests; else not found,
    the same answer as for an id that does not exist, and audited under `refused`."""
    record = session.get(Record, record_id, with_for_update=lock)
    if record is None or not (record.created_by == caller.sub or caller.has(Scope.DSR_MANAGE)):
        audit.record(session, caller=caller, action=refused, outcome=audit.Outcome.DENIED,
                     subject_id=None if record is None else record.subject_id,
                     resource=f"record:{record_id}",
                     details={"reason": "no such record" if record is None
                              else "not the record's writer"})
        raise NotFound("no such record")
    return record


def for_rectification(session: Session, policy: Policy, *, caller: Caller,
                      record_id: str) -> Record:
    """As `for_writer`, locked for a change. The subject's consent state is locked first (shared,
    when the record's purpose rests on consent), then the record's row: the order a withdrawal
    and a data-subject request take them in, so none of them can deadlock with this one."""
    record = for_writer(session, caller=caller, record_id=record_id,
                        refused="record.rectify_refused")
    hold_consent(session, policy, subject_id=record.subject_id, purpose=record.purpose)
    locked = session.get(Record, record_id, with_for_update=True, populate_existing=True)
    if locked is None:  # deleted meanwhile
        raise NotFound("no such record")
    return locked


def rectify(session: Session, policy: Policy, keys: Keys, *, caller: Caller, record: Record,
            purpose: str, data: dict[str, Any], basis: Decision | None = None) -> Written:
    """Correct some fields (null removes one) with the same checks as a write, against the
    purpose the record was collected for, which `purpose` must name. `basis` is for corrections
    a law requires whatever the consent (a data subject's rectification request)."""
    if record.erased_at is not None or record.deidentified_at is not None:
        audit.record(session, caller=caller, action="record.rectify_refused",
                     outcome=audit.Outcome.DENIED, purpose=purpose,
                     subject_id=record.subject_id, resource=f"record:{record.id}",
                     details={"reason": "record closed"})
        raise RecordClosed("this record can no longer change: "
                           + ("its subject was erased and a law keeps it as it is"
                              if record.erased_at else "it was de-identified"))
    _check_purpose_limitation(session, policy, caller=caller, record=record, purpose=purpose,
                              data=data)
    checked = check_record(policy, type_name=record.record_type, purpose=record.purpose,
                           data=data, partial=True)
    spec = checked.record_type
    scans = storage.scan_texts(spec, checked.values, keys.scan)
    removed = sorted(name for name, value in data.items()
                     if value is None and name in spec.fields and name not in checked.dropped)
    required = [name for name in removed if spec.fields[name].required]
    if required:
        raise Invalid(f"field {required[0]} is required and cannot be removed",
                      errors=[{"field": f"data.{n}", "reason": "required"} for n in required])
    decision = basis or require_consent(
        session, policy, caller=caller, subject_id=record.subject_id, purpose=record.purpose,
        sensitive=_sensitive(spec, checked.values), action="record.rectify_refused",
        record_type=record.record_type)
    now = utcnow()
    stored = storage.protect_values(session, keys.keyring, subject_id=record.subject_id,
                                    context=storage.record_context(record.id), spec=spec,
                                    values=checked.values, hash_key=keys.hash_key, scans=scans)
    drop_fields(session, record, set(stored.data) | set(removed))
    record.data = record.data | stored.data
    record.originals = record.originals | stored.originals
    record.field_retention = record.field_retention | \
        storage.field_deadlines(spec, stored.data, collected=now, now=now)
    if spec.retention.trigger == "last_activity":
        record.retention_until = storage.deadline(spec.retention, collected=record.created_at,
                                                  now=now)
    record.updated_at = now
    session.add_all(_index_rows(record, stored.indexes))
    session.flush()
    audit.record(session, caller=caller, action="record.rectified", purpose=record.purpose,
                 subject_id=record.subject_id, resource=f"record:{record.id}",
                 details={"record_type": record.record_type, "fields": sorted(stored.data),
                          "removed": removed, "dropped": checked.dropped,
                          "findings": _finding_counts(stored.findings)})
    return Written(record, stored.findings, checked.dropped, decision, removed)


def _check_purpose_limitation(session: Session, policy: Policy, *, caller: Caller,
                              record: Record, purpose: str, data: dict[str, Any]) -> None:
    """Rectification corrects what was collected for the record's purpose and cannot widen it:
    a field that purpose does not collect, or another purpose, needs a new record (which gets
    that purpose's own checks and consent). A refusal is audited: it is an attempt to store
    data beyond what the purpose allows."""
    spec = validation.record_type(policy, record.record_type)
    collected = record.purpose
    outside = [] if spec.unneeded_fields == "drop" else sorted(
        name for name in data
        if name in spec.fields and collected not in spec.fields[name].purposes)
    errors = [{"field": f"data.{name}",
               "reason": f"field {name} is not collected for purpose {collected}, the purpose "
                         "this record was collected for"} for name in outside]
    if purpose != collected:
        errors.append({"field": "purpose",
                       "reason": f"this record was collected for {collected}; data for "
                                 f"{purpose} needs a new record"})
    if not errors:
        return
    audit.record(session, caller=caller, action="record.rectify_refused",
                 outcome=audit.Outcome.DENIED, purpose=purpose, subject_id=record.subject_id,
                 resource=f"record:{record.id}",
                 details={"reason": "purpose-limitation", "record_purpose": collected,
                          "fields": outside})
    raise Invalid(errors[0]["reason"], errors=errors)


def drop_fields(session: Session, record: Record, names: set[str] | list[str]) -> None:
    """Take fields out of a record: values, encrypted originals, deadlines, blind indexes."""
    record.data = {k: v for k, v in record.data.items() if k not in names}
    record.originals = {k: v for k, v in record.originals.items() if k not in names}
    record.field_retention = {k: v for k, v in record.field_retention.items()
                              if k not in names}
    session.execute(delete(BlindIndex).where(BlindIndex.record_id == record.id,
                                             BlindIndex.field.in_(names)))


def remove(session: Session, *, caller: Caller, record: Record) -> None:
    """Delete a record and its blind indexes, unless a legal hold keeps it."""
    reason = hold_reason(session, record.subject_id)
    if reason:
        audit.record(session, caller=caller, action="record.delete_refused",
                     outcome=audit.Outcome.DENIED, subject_id=record.subject_id,
                     resource=f"record:{record.id}", details={"reason": "legal hold"})
        raise LegalHoldActive(f"a legal hold keeps this record: {reason}")
    session.execute(delete(BlindIndex).where(BlindIndex.record_id == record.id))
    session.delete(record)
    session.flush()
    audit.record(session, caller=caller, action="record.deleted", subject_id=record.subject_id,
                 resource=f"record:{record.id}", details={"record_type": record.record_type})
    outbox.publish(session, Event.RECORD_DELETED, {"reason": "api", "records": [
        {"record_id": record.id, "record_type": record.record_type, "purpose": record.purpose,
         "subject_id": record.subject_id}]})


def reencrypt_subject(session: Session, keyring: Keyring, subject_id: str) -> int:
    """Rewrite every stored ciphertext of the subject under their current keys."""
    count = 0
    for record in session.scalars(select(Record).where(Record.subject_id == subject_id)
                                  .with_for_update()):
        record.data, record.originals, done = storage.reencrypt(
            session, keyring, subject_id=subject_id, record_id=record.id, data=record.data,
            originals=record.originals)
        count += done
    session.flush()
    return count


register_reencryptor(reencrypt_subject)
