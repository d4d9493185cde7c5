"""Legal holds: a subject's data, or every record of a type, kept from erasure, retention
deletion and key destruction while litigation or an investigation needs it."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import iso_or_none, utcnow
from app.db import Position, keyset
from app.dsr.models import LegalHold
from app.errors import Conflict, Invalid, NotFound
from app.policy.loader import Policy
from app.records import service as records
from app.schemas import valid_subject_id


def _active(now: datetime) -> ColumnElement[bool]:
    return (LegalHold.released_at.is_(None)) & (
        or_(LegalHold.until.is_(None), LegalHold.until > now))


def place(session: Session, policy: Policy, *, caller: Caller, subject_id: str | None,
          record_type: str | None, reason: str, until: datetime | None) -> LegalHold:
    if subject_id is not None:
        valid_subject_id(subject_id)
    if record_type is not None and record_type not in policy.body.record_types:
        raise Invalid(f"unknown record type {record_type!r}", field="record_type")
    now = utcnow()
    if until is not None and until <= now:
        raise Invalid("until must be in the future", field="until")
    hold = LegalHold(id=f"hold_{secrets.token_hex(12)}", subject_id=subject_id,
                     record_type=record_type, reason=reason, until=until, created_by=caller.sub,
                     created_at=now)
    session.add(hold)
    session.flush()
    audit.record(session, caller=caller, action="legal_hold.placed", subject_id=subject_id,
                 resource=f"legal_hold:{hold.id}",
                 details={"record_type": record_type, "until": iso_or_none(until)})
    return hold


def get(session: Session, hold_id: str) -> LegalHold:
    hold = session.get(LegalHold, hold_id)
    if hold is None:
        raise NotFound("no such legal hold")
    return hold


def release(session: Session, *, caller: Caller, hold_id: str) -> LegalHold:
    hold = session.get(LegalHold, hold_id, with_for_update=True)
    if hold is None:
        raise NotFound("no such legal hold")
    if hold.released_at is not None:
        raise Conflict("this legal hold was already released")
    hold.released_at, hold.released_by = utcnow(), caller.sub
    audit.record(session, caller=caller, action="legal_hold.released",
                 subject_id=hold.subject_id, resource=f"legal_hold:{hold.id}",
                 details={"record_type": hold.record_type})
    return hold


def listing(session: Session, *, subject_id: str | None = None, active_only: bool = True,
            limit: int = 100, after: Position | None = None) -> list[LegalHold]:
    """Holds, newest first (then by id), past `after`."""
    query = keyset(select(LegalHold), sort=LegalHold.created_at, id=LegalHold.id, after=after,
                   descending=True).limit(limit)
    if active_only:
        query = query.where(_active(utcnow()))
    if subject_id is not None:
        query = query.where(LegalHold.subject_id == subject_id)
    return list(session.scalars(query))


def held_types(session: Session, now: datetime | None = None) -> set[str]:
    """Record types under a hold that covers every subject."""
    return set(session.scalars(select(LegalHold.record_type).where(
        _active(now or utcnow()), LegalHold.record_type.is_not(None))))


def held_subjects(session: Session, now: datetime | None = None) -> set[str]:
    return set(session.scalars(select(LegalHold.subject_id).where(
        _active(now or utcnow()), LegalHold.subject_id.is_not(None))))


def subject_hold_reason(session: Session, subject_id: str) -> str | None:
    """Why a hold keeps this subject's data (their own hold, or one on a type of record they
    have), or None. This is the check key destruction and erasure consult."""
    now = utcnow()
    hold = session.scalar(select(LegalHold).where(
        _active(now), LegalHold.subject_id == subject_id).limit(1))
    if hold is None:
        types = held_types(session, now)
        if records.has_type(session, subject_id, types):
            hold = session.scalar(select(LegalHold).where(
                _active(now), LegalHold.record_type.in_(types)).limit(1))
    return f"{hold.id}: {hold.reason}" if hold is not None else None


def hold_dict(hold: LegalHold) -> dict[str, object]:
    now = utcnow()
    return {"id": hold.id, "subject_id": hold.subject_id, "record_type": hold.record_type,
            "reason": hold.reason, "until": iso_or_none(hold.until),
            "created_by": hold.created_by, "created_at": hold.created_at.isoformat(),
            "released_at": iso_or_none(hold.released_at),
            "released_by": hold.released_by,
            "active": hold.released_at is None and (hold.until is None or hold.until > now)}

