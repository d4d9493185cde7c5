"""Reading stored records for a stated purpose: each field clear, masked or not at all, by the
most restrictive of the caller's roles (or an approved elevated-access grant), the subject's
consent, the record's retention state and restrictions from data-subject requests.

A caller who may see no field of a record for the purpose gets "not found", the same answer
as for an id that does not exist: ids of other subjects' records reveal nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session

from app.access.service import active_grants, grants_exist
from app.audit import service as audit
from app.auth.guard import Caller
from app.auth.scopes import Scope
from app.clock import utcnow
from app.consent.decision import Decision
from app.db import OUTSIDE_TRANSACTION, begin_lazily
from app.errors import Forbidden, Invalid, NotFound
from app.keys.errors import SubjectErased
from app.keys.fields import BLIND_INDEX_KEY, blind_index
from app.keys.keyring import Keyring
from app.keys.rows import STATE_COLUMNS
from app.policy.loader import Policy
from app.policy.models import Access
from app.records import storage
from app.records.access import FieldAccess, consent_for, field_access, may_see, role_access
from app.records.lookup import subjects_with
from app.records.models import Record
from app.retention import rules

LOOKUP_KINDS = tuple(storage.INDEXED_TYPES.values())
# The record and, in the same round trip, the key state its decryption checks first and whether
# the caller may hold a grant for it (most hold none, and then there is nothing more to ask).
# Its columns, not the ORM entity: a read changes nothing, and building, tracking and detaching
# an instance was a tenth of a read's own CPU. The row answers the same attribute names.
_RECORD_READ = select(*Record.__table__.c, *STATE_COLUMNS,
                      grants_exist(Record.id, Record.subject_id)).where(
    Record.id == bindparam("record_id")).execution_options(**OUTSIDE_TRANSACTION)


@dataclass
class View:
    # a Record, or for a single read the row its columns came in (read-only, outside the
    # session): read its attributes, never change it
    record: Record
    data: dict[str, Any]
    access: dict[str, dict[str, str]]

    def as_dict(self) -> dict[str, Any]:
        record = self.record
        return {"record_id": record.id, "subject_id": record.subject_id,
                "record_type": record.record_type, "data": self.data, "access": self.access,
                "created_at": record.created_at.isoformat(),
                "updated_at": record.updated_at.isoformat(),
                "retention_until": record.retention_until.isoformat()
                if record.retention_until else None}

    def audit_details(self) -> dict[str, Any]:
        return {"record_type": self.record.record_type, "requested": sorted(self.access),
                "returned": sorted(self.data),
                "masked": sorted(n for n, a in self.access.items() if a["decision"] == "masked")}


def _state(record: Record, name: str, now: datetime) -> str | None:
    """Why the field may not be used at all, whoever asks."""
    if record.erased_at is not None:
        return "restricted: the subject was erased; a law keeps this record until it expires"
    if record.restricted_at is not None:
        return "restricted: a data-subject request restricts processing of this record"
    if (record.retention_until is not None and record.retention_until <= now) or \
            rules.field_expired(record.field_retention, name, now):
        return "retention period over: awaiting deletion"
    return None


def view(session: Session, policy: Policy, keyring: Keyring, *, caller: Caller, record: Record,
         purpose: str, only: set[str] | None = None, consent: Decision | None = None,
         grants: dict[str, str] | None = None) -> View | None:
    """The record as this caller may see it for the purpose, or None if they may see nothing
    of it. `only` narrows the fields asked for; `grants`, the caller's grants if already known
    (else they are looked up)."""
    spec = policy.body.record_types.get(record.record_type)
    if spec is None:  # a record type since removed from policy: nobody reads it through here
        return None
    present = [name for name in record.data if name in spec.fields and
               (only is None or name in only)]
    if grants is None:
        grants = active_grants(session, caller=caller, subject_id=record.subject_id,
                               purpose=purpose, record_id=record.id)
    if not may_see(policy, roles=caller.roles, purpose=purpose,
                   fields={n: spec.fields[n] for n in present}, granted=set(grants)):
        return None
    if consent is None:
        consent = consent_for(session, policy, caller=caller, subject_id=record.subject_id,
                              purpose=purpose,
                              sensitive=any(spec.fields[n].sensitive for n in present),
                              action="record.read_refused", record_type=record.record_type)
    now = utcnow()
    data: dict[str, Any] = {}
    access: dict[str, dict[str, str]] = {}
    for name in present:
        granted = field_access(policy, roles=caller.roles, purpose=purpose,
                               spec=spec.fields[name], consent=consent,
                               state=_state(record, name, now), grant=grants.get(name))
        if granted.decision is not Access.DENIED:
            try:
                data[name] = storage.reveal_value(
                    session, keyring, subject_id=record.subject_id,
                    context=storage.record_context(record.id),
                    name=name, spec=spec.fields[name], stored=record.data[name],
                    original=record.originals.get(name),
                    clear=granted.decision is Access.CLEAR)
            except SubjectErased:
                granted = FieldAccess(Access.DENIED, "subject-erased: the subject's key was "
                                                     "destroyed")
        access[name] = granted.as_dict()
    return View(record, data, access)


def read_one(session: Session, policy: Policy, keyring: Keyring, *, caller: Caller,
             record_id: str, purpose: str, only: set[str] | None) -> View:
    policy.purpose(purpose)
    asked_at = time.monotonic_ns()  # for the key state the statement reads (Keyring.read_ahead)
    row = begin_lazily(session).execute(_RECORD_READ, {
        "record_id": record_id, "grant_requester": caller.sub, "grant_purpose": purpose}).first()
    seen = None
    if row is not None:
        keyring.read_ahead(session, row.pgw_shred_epoch, row.pgw_kek_latest, asked_at)
        seen = view(session, policy, keyring, caller=caller, record=cast(Record, row),
                    purpose=purpose, only=only, grants=None if row.pgw_grants_exist else {})
    if seen is None:
        audit.record(session, caller=caller, action="record.read_refused",
                     outcome=audit.Outcome.DENIED, purpose=purpose,
                     resource=f"record:{record_id}", details={"reason": "not found"})
        raise NotFound("no such record")
    audit.record(session, caller=caller, action="record.read", purpose=purpose,
                 subject_id=seen.record.subject_id, resource=f"record:{record_id}",
                 details=seen.audit_details())
    return seen


def read_subject(session: Session, policy: Policy, keyring: Keyring, *, caller: Caller,
                 subject_id: str, purpose: str, limit: int,
                 after: str | None) -> tuple[list[View], str | None]:
    """The subject's records this caller may see for the purpose, in id order, and the cursor
    for the next page (None on the last)."""
    policy.purpose(purpose)
    query = select(Record).where(Record.subject_id == subject_id).order_by(Record.id)
    if after is not None:
        query = query.where(Record.id > after)
    views: list[View] = []
    consents: dict[bool, Decision] = {}  # one decision per sensitivity for the whole listing
    records = list(session.scalars(query.limit(limit)))
    for record in records:
        spec = policy.body.record_types.get(record.record_type)
        sensitive = spec is not None and any(
            spec.fields[n].sensitive for n in record.data if n in spec.fields)
        if sensitive not in consents:
            consents[sensitive] = consent_for(
                session, policy, caller=caller, subject_id=subject_id, purpose=purpose,
                sensitive=sensitive, action="record.read_refused", record_type=record.record_type)
        seen = view(session, policy, keyring, caller=caller, record=record, purpose=purpose,
                    consent=consents[sensitive])
        if seen is not None:
            views.append(seen)
    audit.record(session, caller=caller, action="subject.records_read", purpose=purpose,
                 subject_id=subject_id,
                 details={"records": [v.record.id for v in views],
                          "returned": sorted({n for v in views for n in v.data})})
    return views, records[-1].id if len(records) == limit else None


def lookup(session: Session, policy: Policy, keyring: Keyring, *, caller: Caller, kind: str,
           value: str, purpose: str | None) -> list[str]:
    """Subject ids whose records hold this e-mail, phone or ID number (by blind index).

    Those who manage data-subject requests may look anyone up; a reader needs a purpose for
    which one of their roles may see that kind of identifier."""
    if not caller.has(Scope.DSR_MANAGE):
        if purpose is None:
            raise Invalid("a purpose is required to look up subjects with records:read",
                          field="purpose")
        policy.purpose(purpose)
        if not _may_look_up(policy, caller, kind, purpose):
            audit.record(session, caller=caller, action="subject.lookup_refused",
                         outcome=audit.Outcome.DENIED, purpose=purpose,
                         details={"kind": kind})
            raise Forbidden(f"no role of the caller may see {kind} data for {purpose}")
    digest = blind_index(keyring.service_key(session, BLIND_INDEX_KEY), kind, value)
    found = sorted(subjects_with(session, kind=kind, digest=digest))
    audit.record(session, caller=caller, action="subject.lookup", purpose=purpose,
                 subject_id=found[0] if len(found) == 1 else None,
                 details={"kind": kind, "matches": len(found), "subjects": found[:20]})
    return found


def _may_look_up(policy: Policy, caller: Caller, kind: str, purpose: str) -> bool:
    return any(storage.INDEXED_TYPES.get(spec.type) == kind and spec.blind_index and
               purpose in spec.purposes and
               role_access(policy, caller.roles, spec.category, purpose) is not Access.DENIED
               for record_type in policy.body.record_types.values()
               for spec in record_type.fields.values())
