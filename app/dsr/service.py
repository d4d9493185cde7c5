"""Submitting, listing, extending and rejecting data-subject requests; their timelines.

A request is answered by a job (`dsr.run`, in `jobs.py`); what it does per type is in
`export.py`, `erasure.py` and `changes.py`.
"""

from __future__ import annotations

import json
import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import iso_or_none, utcnow
from app.db import Position, keyset
from app.dsr import events
from app.dsr import verification as verifier
from app.dsr.deadlines import add_period
from app.dsr.models import DsrEvent, DsrRequest, DsrStatus, Tombstone
from app.errors import Conflict, Invalid, NotFound
from app.jobs import queue
from app.keys.fields import blind_index, decrypt_field, encrypt_field
from app.keys.keyring import Keyring
from app.policy.loader import Policy
from app.records.validation import normalise
from app.webhooks.events import Event

TYPES = ("access", "portability", "erasure", "rectification", "restriction", "objection")
OPEN = (DsrStatus.UNVERIFIED, DsrStatus.RECEIVED, DsrStatus.IN_PROGRESS, DsrStatus.ON_HOLD)
TOMBSTONE_KEY = "tombstone"
LANGUAGES = {"PIPL": "zh"}


def ref(dsr_id: str) -> str:
    return f"dsr:{dsr_id}"


def add_event(session: Session, dsr: DsrRequest, event: str, *, actor: str,
              details: dict[str, Any] | None = None) -> None:
    session.add(DsrEvent(dsr_id=dsr.id, at=utcnow(), event=event, actor=actor,
                         details=details or {}))


_TOMBSTONED = select(Tombstone.digest).where(Tombstone.digest == bindparam("digest"))


def tombstone_digest(session: Session, keyring: Keyring, subject_id: str) -> str:
    return blind_index(keyring.service_key(session, TOMBSTONE_KEY), "subject", subject_id)


def was_erased(session: Session, keyring: Keyring, subject_id: str) -> bool:
    digest = tombstone_digest(session, keyring, subject_id)
    # a column on the connection, not the entity through the ORM: every write of a record
    # asks, and nearly always finds none (tombstones are committed by erasure jobs, never
    # pending in a session that asks)
    return session.connection().execute(_TOMBSTONED, {"digest": digest}).first() is not None


def submit(session: Session, policy: Policy, keyring: Keyring, *, caller: Caller,
           subject_id: str | None, identifiers: dict[str, str] | None, type: str,
           jurisdiction: str, verification: dict[str, Any],
           corrections: dict[str, Any] | None, language: str | None) -> DsrRequest:
    rules = policy.body.jurisdictions.get(jurisdiction)
    if rules is None:
        raise Invalid(f"unknown jurisdiction {jurisdiction!r}; supported: "
                      f"{', '.join(sorted(policy.body.jurisdictions))}", field="jurisdiction")
    if type == "rectification" and not corrections:
        raise Invalid("a rectification request needs corrections", field="corrections")
    if type != "rectification" and corrections:
        raise Invalid("corrections belong to rectification requests only",
                      field="corrections")
    if corrections:
        _check_corrections(policy, corrections)
    verifier.check_method(policy, verification["method"])
    if subject_id is None:
        subject_id = verifier.resolve_subject(session, keyring, identifiers or {})
    now = utcnow()
    # an objection under CCPA is an opt-out of sale and sharing: 15 business days, not 45
    period = rules.opt_out_deadline if type == "objection" and rules.opt_out_deadline \
        else rules.request_deadline
    due = add_period(now, period)
    dsr_id = f"dsr_{secrets.token_hex(12)}"

    def sealed(name: str, value: Any) -> str:
        return encrypt_field(session, keyring, subject_id=subject_id, field=name,
                             context=f"dsr:{dsr_id}", value=json.dumps(value))

    dsr = DsrRequest(
        id=dsr_id, subject_id=subject_id, type=type, jurisdiction=jurisdiction,
        status=verifier.UNVERIFIED, language=language or LANGUAGES.get(jurisdiction, "en"),
        verification=sealed("verification", verification),
        # the corrections stay under the subject's key until applied, then are dropped
        corrections=sealed("corrections", corrections) if corrections else None,
        submitted_by=caller.sub, submitted_at=now, due_at=due, first_due_at=due, result={})
    session.add(dsr)
    session.flush()
    erased = was_erased(session, keyring, subject_id)
    add_event(session, dsr, "submitted", actor=caller.sub,
              details={"due_at": due.isoformat(), "previously_erased": erased})
    method = verification["method"]
    audit.record(session, caller=caller, action="dsr.submitted", subject_id=subject_id,
                 resource=f"dsr:{dsr.id}",
                 details={"type": type, "jurisdiction": jurisdiction,
                          "verification_claimed": method, "due_at": due.isoformat()})
    if verifier.trusted(policy, caller, method=method, dsr_type=type) and \
            not subject_id.startswith(verifier.AMBIGUOUS):
        verifier.mark_verified(session, policy, caller=caller, dsr=dsr, method=method,
                               reference=verification.get("reference"))
        dsr.status = DsrStatus.RECEIVED
        queue.enqueue(session, "dsr.run", {"dsr_id": dsr.id}, ref=ref(dsr.id))
        events.publish(session, dsr, Event.DSR_RECEIVED)
    return dsr


def _check_corrections(policy: Policy, corrections: dict[str, Any]) -> None:
    """Every correction names a known field and holds a valid value for each field of that
    name, so the job does not fail on what could be refused now."""
    errors = []
    for name, value in corrections.items():
        specs = [spec.fields[name] for spec in policy.body.record_types.values()
                 if name in spec.fields]
        if not specs:
            errors.append({"field": f"corrections.{name}", "reason": "unknown field"})
            continue
        if value is None:
            errors.append({"field": f"corrections.{name}",
                           "reason": "a correction needs a value; ask for erasure to remove"})
            continue
        for spec in specs:
            try:
                normalise(spec, value)
            except ValueError as exc:
                errors.append({"field": f"corrections.{name}", "reason": str(exc)})
                break
    if errors:
        raise Invalid(f"{errors[0]['field']}: {errors[0]['reason']}", errors=errors)


def corrections_of(session: Session, keyring: Keyring, dsr: DsrRequest) -> dict[str, Any]:
    if dsr.corrections is None:
        return {}
    loaded: dict[str, Any] = json.loads(decrypt_field(
        session, keyring, subject_id=dsr.subject_id, field="corrections",
        context=f"dsr:{dsr.id}", token=dsr.corrections))
    return loaded


def get(session: Session, dsr_id: str, *, lock: bool = False) -> DsrRequest:
    dsr = session.get(DsrRequest, dsr_id, with_for_update=lock)
    if dsr is None:
        raise NotFound("no such data-subject request")
    return dsr


def listing(session: Session, *, status: DsrStatus | None, type: str | None, overdue: bool | None,
            subject_id: str | None, limit: int, now: datetime | None = None,
            due_within: timedelta | None = None, after: Position | None = None,
            ) -> list[DsrRequest]:
    """Requests by deadline, soonest first (then by id), past `after`."""
    now = now or utcnow()
    query = keyset(select(DsrRequest), sort=DsrRequest.due_at, id=DsrRequest.id,
                   after=after).limit(limit)
    if due_within is not None:  # open requests whose deadline (passed or not) falls before
        query = query.where(DsrRequest.status.in_(OPEN), DsrRequest.due_at < now + due_within)
    if status is not None:
        query = query.where(DsrRequest.status == status)
    if type is not None:
        query = query.where(DsrRequest.type == type)
    if subject_id is not None:
        query = query.where(DsrRequest.subject_id == subject_id)
    if overdue is not None:
        late = DsrRequest.status.in_(OPEN) & (DsrRequest.due_at < now)
        query = query.where(late if overdue else ~late)
    return list(session.scalars(query))


def extend(session: Session, policy: Policy, *, caller: Caller, dsr_id: str,
           reason: str) -> DsrRequest:
    """Extend the deadline once, while the first period runs (GDPR art. 12(3))."""
    dsr = get(session, dsr_id, lock=True)
    rules = policy.body.jurisdictions[dsr.jurisdiction]
    if dsr.status not in OPEN:
        raise Conflict(f"the request is {dsr.status}; only open requests can be extended")
    if rules.extension is None:
        raise Conflict(f"{dsr.jurisdiction} allows no extension of the deadline")
    if dsr.extension_reason is not None:
        raise Conflict("the deadline was already extended once")
    now = utcnow()
    if now >= dsr.first_due_at:
        raise Conflict("the first period is over: an extension had to be made within it")
    dsr.due_at, dsr.extension_reason = add_period(dsr.first_due_at, rules.extension), reason
    add_event(session, dsr, "extended", actor=caller.sub,
              details={"due_at": dsr.due_at.isoformat()})
    events.publish(session, dsr, Event.DSR_EXTENDED)
    audit.record(session, caller=caller, action="dsr.extended", subject_id=dsr.subject_id,
                 resource=f"dsr:{dsr.id}", details={"due_at": dsr.due_at.isoformat(),
                                                      "reason": _clipped(reason)})
    return dsr


def reject(session: Session, *, caller: Caller, dsr_id: str, reason: str) -> DsrRequest:
    """Refuse the request with the reason the subject is told (PIPL art. 50)."""
    dsr = get(session, dsr_id, lock=True)
    if dsr.status not in (DsrStatus.UNVERIFIED, DsrStatus.RECEIVED, DsrStatus.ON_HOLD):
        raise Conflict(f"the request is {dsr.status}; only requests not yet being carried out "
                       "can be rejected")
    dsr.status, dsr.rejection_reason, dsr.closed_at = DsrStatus.REJECTED, reason, utcnow()
    add_event(session, dsr, "rejected", actor=caller.sub)
    events.publish(session, dsr, Event.DSR_REJECTED)
    audit.record(session, caller=caller, action="dsr.rejected", subject_id=dsr.subject_id,
                 resource=f"dsr:{dsr.id}", details={"type": dsr.type, "reason": _clipped(reason)})
    return dsr


def _clipped(reason: str) -> str:
    """The reason the officer gave, as far as an audit detail may hold it."""
    return reason if len(reason) <= audit.MAX_DETAIL_STRING else \
        reason[:audit.MAX_DETAIL_STRING - 1] + "…"


def retry(session: Session, *, caller: Caller, dsr_id: str) -> DsrRequest:
    """Run a failed request again, from the step it reached (its steps are idempotent)."""
    dsr = get(session, dsr_id, lock=True)
    if dsr.status != DsrStatus.FAILED:
        raise Conflict(f"the request is {dsr.status}; only failed requests can be retried")
    dsr.status = DsrStatus.RECEIVED
    add_event(session, dsr, "retried", actor=caller.sub)
    queue.enqueue(session, "dsr.run", {"dsr_id": dsr.id}, ref=ref(dsr.id))
    audit.record(session, caller=caller, action="dsr.retried", subject_id=dsr.subject_id,
                 resource=f"dsr:{dsr.id}", details={"type": dsr.type})
    return dsr


def resume_released(session: Session, *, caller: Caller) -> list[str]:
    """Queue again the requests on hold whose subject no hold covers any more."""
    from app.dsr.holds import subject_hold_reason

    resumed = []
    for dsr in session.scalars(select(DsrRequest).where(DsrRequest.status == DsrStatus.ON_HOLD)
                               .with_for_update()):
        if subject_hold_reason(session, dsr.subject_id):
            continue
        dsr.status = DsrStatus.RECEIVED
        add_event(session, dsr, "resumed", actor=caller.sub)
        queue.enqueue(session, "dsr.run", {"dsr_id": dsr.id}, ref=ref(dsr.id))
        resumed.append(dsr.id)
    return resumed


def timeline(session: Session, dsr: DsrRequest) -> list[dict[str, Any]]:
    events = [{"at": e.at.isoformat(), "event": e.event, "actor": e.actor, **e.details}
              for e in session.scalars(select(DsrEvent).where(DsrEvent.dsr_id == dsr.id)
                                       .order_by(DsrEvent.at, DsrEvent.id))]
    for job, attempt in queue.attempts_for(session, ref(dsr.id)):
        entry = {"at": attempt.started_at.isoformat(), "event": f"job.{attempt.outcome}",
                 "actor": attempt.worker, "job": job.kind, "attempt": attempt.attempt}
        if attempt.error:
            entry["error"] = attempt.error
        events.append(entry)
    return sorted(events, key=lambda e: e["at"])


def dsr_dict(dsr: DsrRequest, *, now: datetime | None = None) -> dict[str, Any]:
    now = now or utcnow()
    return {"id": dsr.id, "subject_id": dsr.subject_id, "type": dsr.type,
            "jurisdiction": dsr.jurisdiction, "status": dsr.status, "language": dsr.language,
            "submitted_at": dsr.submitted_at.isoformat(), "due_at": dsr.due_at.isoformat(),
            "overdue": dsr.status in OPEN and dsr.due_at < now,
            "extended": dsr.extension_reason is not None,
            "extension_reason": dsr.extension_reason, "rejection_reason": dsr.rejection_reason,
            "closed_at": iso_or_none(dsr.closed_at),
            "verification": verifier.view(dsr), "result": dsr.result}


def submitter_view(dsr: DsrRequest, *, now: datetime | None = None) -> dict[str, Any]:
    """What the service that submitted a request sees: no subject id (which tells a matched
    subject from an unmatched one), and no result until the person was verified."""
    shown = dsr_dict(dsr, now=now)
    del shown["subject_id"]
    if dsr.verified_at is None:
        shown["result"] = {}
    return shown


def deadline_counts(session: Session, *, soon: timedelta,
                    now: datetime | None = None) -> dict[str, int]:
    """Open requests past their deadline, and due within `soon`."""
    now = now or utcnow()
    overdue = session.scalar(select(func.count()).select_from(DsrRequest).where(
        DsrRequest.status.in_(OPEN), DsrRequest.due_at < now)) or 0
    due_soon = session.scalar(select(func.count()).select_from(DsrRequest).where(
        DsrRequest.status.in_(OPEN), DsrRequest.due_at >= now,
        DsrRequest.due_at < now + soon)) or 0
    return {"overdue": overdue, "due_soon": due_soon}
