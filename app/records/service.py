"""Writing, rectifying and deleting stored records. Reading them is in `reading.py`."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.auth.scopes import Scope
from app.clock import iso_or_none, utcnow
from app.consent.decision import Decision
from app.dsr.service import was_erased
from app.errors import Conflict, GatewayError, Invalid, NotFound
from app.keys.keyring import Keyring
from app.keys.shred import LegalHoldActive
from app.pii.engine import Finding
from app.policy.loader import Policy
from app.policy.models import RecordType
from app.records import storage, validation
from app.records.access import hold_consent, refusal_audited, require_consent
from app.records.models import BlindIndex
from app.records.models import Record as Record  # other domains name it from here
from app.records.validation import check_record
from app.webhooks import outbox
from app.webhooks.events import Event

if TYPE_CHECKING:
    from app.runtime import Runtime


class RecordClosed(Conflict):
    type, title = "record-closed", "Record closed"


@dataclass
class Written:
    # from `create`, an instance outside the session that answers for the row inserted (a
    # change to it is not saved); from `rectify`, the session's own
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
    # the write's response is sealed under the subject's key with the deployment's cipher (an
    # idempotency claim keeps it): that key is prepared with the others, in their order
    sealed: bool = False

    @classmethod
    def of(cls, runtime: Runtime, keyring: Keyring) -> Keys:
        """The keys a service process writes with: its keyed-hash key and PII scanner."""
        return cls(keyring=keyring, hash_key=runtime.pii_hash_key,
                   scan=storage.scanner(runtime.settings))


_ADD_INDEXES = insert(BlindIndex)  # built once: its compiled form is cached
_INSERT_RECORD = insert(Record)


def _add_indexes(session: Session, record: Record, indexes: list[tuple[str, str, str]]) -> None:
    """The record's blind indexes, in one statement (the record is in the database already)."""
    if indexes:
        session.connection().execute(_ADD_INDEXES, [
            {"record_id": record.id, "subject_id": record.subject_id, "field": name,
             "kind": kind, "digest": digest} for name, kind, digest in indexes])


def _sensitive(spec: RecordType, names: Any) -> bool:
    return any(spec.fields[name].sensitive for name in names)


def scan_before(policy: Policy, keys: Keys, *, record_type: str, purpose: str,
                data: dict[str, Any]) -> Keys:
    """The keys with this write's free text already scanned, for a caller that opens the
    transaction before `create` (an idempotency claim does): no lock is held while the PII
    engine runs. A write that fails its checks is scanned by no one: `create` refuses it."""
    try:
        checked = check_record(policy, type_name=record_type, purpose=purpose, data=data)
    except GatewayError:
        return keys
    found = storage.scan_texts(checked.record_type, checked.values, keys.scan)
    if not found:
        return keys
    by_text = {checked.values[name]: findings for name, findings in found.items()}

    def scan(text: str) -> list[Finding]:
        return by_text[text] if text in by_text else keys.scan(text)

    return dataclasses.replace(keys, scan=scan)


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
                                    values=checked.values, hash_key=keys.hash_key, scans=scans,
                                    also={None} if keys.sealed else set())
    values = {"id": record_id, "subject_id": subject_id, "record_type": record_type,
              "purpose": purpose, "data": stored.data, "originals": stored.originals,
              "created_by": caller.sub, "created_at": now, "updated_at": now,
              "retention_until": storage.deadline(spec.retention, collected=now, now=now),
              "field_retention": storage.field_deadlines(spec, stored.data, collected=now,
                                                         now=now),
              "restricted_at": None, "deidentified_at": None, "erased_at": None, "version": 1}
    # a Core INSERT, not the ORM's unit of work: nothing here reads the row back, and the
    # flush cost a tenth of a write's CPU. The instance answers for the row, outside the session.
    session.connection().execute(_INSERT_RECORD, values)
    record = Record(**values)
    _add_indexes(session, record, stored.indexes)
    # an erased subject written again (a returning customer, or a system that missed the
    # erasure event): allowed, flagged to the caller and in the audit log
    flags = ["subject-previously-erased"] if was_erased(session, keys.keyring, subject_id) \
        else []
    audit.record(session, caller=caller, action="record.created", purpose=purpose,
                 subject_id=subject_id, resource=f"record:{record_id}",
                 details={"record_type": record_type, "fields": sorted(stored.data),
                          "dropped": audit.names(checked.dropped),
                          "legal_basis": decision.legal_basis,
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
    session.flush()
    _add_indexes(session, record, stored.indexes)
    audit.record(session, caller=caller, action="record.rectified", purpose=record.purpose,
                 subject_id=record.subject_id, resource=f"record:{record.id}",
                 details={"record_type": record.record_type, "fields": sorted(stored.data),
                          "removed": removed, "dropped": audit.names(checked.dropped),
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


def find(session: Session, record_id: str) -> Record | None:
    return session.get(Record, record_id)


def for_subject(session: Session, subject_id: str, *, after: str | None = None,
                limit: int | None = None, lock: bool = False, live_only: bool = False,
                unrestricted_only: bool = False, by_creation: bool = False) -> list[Record]:
    """The subject's records in id order (or creation order); with `after`, those after that
    id; `live_only` leaves out de-identified ones, `unrestricted_only` restricted ones."""
    query = select(Record).where(Record.subject_id == subject_id)
    if after is not None:
        query = query.where(Record.id > after)
    if live_only:
        query = query.where(Record.deidentified_at.is_(None))
    if unrestricted_only:
        query = query.where(Record.restricted_at.is_(None))
    query = query.order_by(Record.created_at, Record.id) if by_creation else \
        query.order_by(Record.id)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query.with_for_update() if lock else query))


def usable_of_type(session: Session, record_type: str, *, created_after: datetime | None,
                   created_before: datetime | None, purposes: Sequence[str] | None
                   ) -> Iterator[Record]:
    """Records of a type that may still be used (not restricted, erased or de-identified),
    in id order; created in [`created_after`, `created_before`), collected for `purposes`."""
    query = select(Record).where(Record.record_type == record_type,
                                 Record.restricted_at.is_(None), Record.erased_at.is_(None),
                                 Record.deidentified_at.is_(None))
    if created_after is not None:
        query = query.where(Record.created_at >= created_after)
    if created_before is not None:
        query = query.where(Record.created_at < created_before)
    if purposes:
        query = query.where(Record.purpose.in_(purposes))
    yield from session.scalars(query.order_by(Record.id))


@dataclass(frozen=True)
class Selection:
    """Which records not yet de-identified a retention sweep looks at: those collected for
    `purposes` (if given) and due by `due_by` (if given)."""

    purposes: Sequence[str] | None = None
    due_by: datetime | None = None


def batch(session: Session, selection: Selection, *, after: str, limit: int,
          lock: bool) -> list[Record]:
    """The next `limit` selected records after the id `after`, in id order."""
    query = select(Record).where(Record.deidentified_at.is_(None), Record.id > after)
    if selection.purposes is not None:
        query = query.where(Record.purpose.in_(selection.purposes))
    if selection.due_by is not None:
        query = query.where(Record.retention_until <= selection.due_by)
    query = query.order_by(Record.id).limit(limit)
    return list(session.scalars(query.with_for_update() if lock else query))


def has_type(session: Session, subject_id: str, record_types: set[str]) -> bool:
    """Whether the subject has a record of one of these types."""
    return bool(record_types) and session.scalar(select(Record.id).where(
        Record.subject_id == subject_id, Record.record_type.in_(record_types)).limit(1)) \
        is not None


def delete_record(session: Session, record: Record) -> None:
    """Delete a record and its blind indexes (the caller checks holds and audits)."""
    session.execute(delete(BlindIndex).where(BlindIndex.record_id == record.id))
    session.delete(record)


def strip_to(session: Session, record: Record, data: dict[str, Any]) -> None:
    """Keep only `data` of a record (what a law or de-identification keeps): its encrypted
    originals and blind indexes go, and the deadlines of the fields that went."""
    session.execute(delete(BlindIndex).where(BlindIndex.record_id == record.id))
    record.data, record.originals = data, {}
    record.field_retention = {k: v for k, v in record.field_retention.items() if k in data}


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
    # imported here: the legal-hold domain reads records, so records may not import it first
    from app.dsr.holds import subject_hold_reason

    reason = subject_hold_reason(session, record.subject_id)
    if reason:
        audit.record(session, caller=caller, action="record.delete_refused",
                     outcome=audit.Outcome.DENIED, subject_id=record.subject_id,
                     resource=f"record:{record.id}", details={"reason": "legal hold"})
        raise LegalHoldActive(f"a legal hold keeps this record: {reason}")
    delete_record(session, record)
    session.flush()
    audit.record(session, caller=caller, action="record.deleted", subject_id=record.subject_id,
                 resource=f"record:{record.id}", details={"record_type": record.record_type})
    outbox.publish(session, Event.RECORD_DELETED, {"reason": "api", "records": [
        {"record_id": record.id, "record_type": record.record_type, "purpose": record.purpose,
         "subject_id": record.subject_id}]})


def reencrypt_subject(session: Session, keyring: Keyring, subject_id: str) -> int:
    """Rewrite every stored ciphertext of the subject under their current keys."""
    count = 0
    for record in for_subject(session, subject_id, lock=True):
        record.data, record.originals, done = storage.reencrypt(
            session, keyring, subject_id=subject_id, record_id=record.id, data=record.data,
            originals=record.originals)
        count += done
    session.flush()
    return count

