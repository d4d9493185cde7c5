"""Apply, approve, audit: access wider than a caller's roles give, for named fields, a purpose
and a limited time. Someone other than the requester decides; every step is audited; an
approved grant expires on its own (the first look after its end records the expiry)."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, bindparam, delete, exists, or_, select, update
from sqlalchemy.orm import InstrumentedAttribute, Session

from app.access.models import AccessRequest, AccessRequestStatus
from app.audit import service as audit
from app.auth.guard import Caller
from app.auth.scopes import Scope
from app.clock import utcnow
from app.db import Position, keyset
from app.errors import Conflict, Forbidden, Invalid, NotFound
from app.policy.loader import Policy
from app.records import service as records
from app.records.service import Record

MAX_DURATION = timedelta(days=7)
MIN_DURATION = timedelta(minutes=1)
SYSTEM = Caller.system("access-expiry")


class SameApprover(Forbidden):
    type, title = "separation-of-duties", "Separation of duties"


def _known_fields(policy: Policy, record: Record | None) -> set[str]:
    if record is not None:
        return set(policy.body.record_types[record.record_type].fields)
    return {name for spec in policy.body.record_types.values() for name in spec.fields}


def apply(session: Session, policy: Policy, *, caller: Caller, subject_id: str | None,
          record_id: str | None, fields: list[str], purpose: str, justification: str,
          duration: timedelta) -> AccessRequest:
    """File a pending request for `fields` of one record or of all of one subject's records."""
    policy.purpose(purpose)
    if not MIN_DURATION <= duration <= MAX_DURATION:
        raise Invalid(f"duration must be between {MIN_DURATION} and {MAX_DURATION}",
                      field="duration")
    record = None
    if record_id is not None:
        record = records.find(session, record_id)
        if record is None:
            raise NotFound("no such record", field="record_id")
        subject_id = record.subject_id
    assert subject_id is not None  # noqa: S101 - the schema requires one of the two
    unknown = sorted(set(fields) - _known_fields(policy, record))
    if unknown:
        raise Invalid(f"no field {unknown[0]!r} in what is requested",
                      errors=[{"field": "fields", "reason": f"unknown field {n!r}"}
                              for n in unknown])
    request = AccessRequest(
        id=f"acr_{secrets.token_hex(12)}", requester=caller.sub, subject_id=subject_id,
        record_id=record_id, fields=sorted(set(fields)), purpose=purpose,
        justification=justification, duration_seconds=int(duration.total_seconds()),
        status=AccessRequestStatus.PENDING, created_at=utcnow())
    session.add(request)
    session.flush()
    audit.record(session, caller=caller, action="access.requested", purpose=purpose,
                 subject_id=subject_id, resource=f"access_request:{request.id}",
                 details={"fields": request.fields, "record_id": record_id,
                          "duration_seconds": request.duration_seconds})
    return request


def shows_subject(request: AccessRequest, *, caller: Caller) -> bool:
    """A request filed by `record_id` does not tell its requester whose record it is: their
    roles may give them nothing of it. Approvers see the subject, which they decide on."""
    return request.record_id is None or caller.has(Scope.ACCESS_APPROVE)


def get_visible(session: Session, *, caller: Caller, request_id: str) -> AccessRequest:
    """The request, if the caller filed it or may decide it; otherwise not found."""
    request = session.get(AccessRequest, request_id)
    if request is None or not (request.requester == caller.sub or
                               caller.has(Scope.ACCESS_APPROVE)):
        raise NotFound("no such access request")
    expire_due(session, requester=request.requester)
    return request


def decide(session: Session, *, caller: Caller, request_id: str, approve: bool,
           reason: str | None, also_known_as: str | None = None) -> AccessRequest:
    """`also_known_as`: another name of the decider (an operator's user name, which a token's
    `sub` may carry), so nobody decides their own request under a second identity."""
    request = session.get(AccessRequest, request_id, with_for_update=True)
    if request is None:
        raise NotFound("no such access request")
    action = "access.approved" if approve else "access.denied"
    if request.requester in (caller.sub, also_known_as):
        audit.record(session, caller=caller, action=action, outcome=audit.Outcome.DENIED,
                     subject_id=request.subject_id, resource=f"access_request:{request.id}",
                     details={"reason": "the requester cannot decide their own request"})
        raise SameApprover("the requester cannot approve or deny their own request")
    if request.status != AccessRequestStatus.PENDING:
        raise Conflict(f"this request is already {request.status}")
    now = utcnow()
    request.status = AccessRequestStatus.APPROVED if approve else AccessRequestStatus.DENIED
    request.decided_by, request.decided_at, request.decision_reason = caller.sub, now, reason
    if approve:
        request.expires_at = now + timedelta(seconds=request.duration_seconds)
    audit.record(session, caller=caller, action=action, purpose=request.purpose,
                 subject_id=request.subject_id, resource=f"access_request:{request.id}",
                 details={"fields": request.fields, "requester": request.requester,
                          "expires_at": request.expires_at.isoformat()
                          if request.expires_at else None})
    return request


def _expire(session: Session, request: AccessRequest) -> bool:
    """Expire one grant; the conditional update makes concurrent lookers record it once."""
    done = session.execute(update(AccessRequest).where(
        AccessRequest.id == request.id, AccessRequest.status == AccessRequestStatus.APPROVED)
        .values(status=AccessRequestStatus.EXPIRED)).rowcount  # type: ignore[attr-defined]
    if done:
        audit.record(session, caller=SYSTEM, action="access.expired", purpose=request.purpose,
                     subject_id=request.subject_id, resource=f"access_request:{request.id}",
                     details={"requester": request.requester, "fields": request.fields})
    return bool(done)


def expire_due(session: Session, *, requester: str | None = None,
               now: datetime | None = None) -> int:
    """Mark approved grants whose time is over as expired, each with an audit entry."""
    query = select(AccessRequest).where(AccessRequest.status == AccessRequestStatus.APPROVED,
                                        AccessRequest.expires_at <= (now or utcnow()))
    if requester is not None:
        query = query.where(AccessRequest.requester == requester)
    return sum(_expire(session, request) for request in list(session.scalars(query)))


# The columns, not the entity: on every read, mostly finding nothing, the ORM's row processing
# was a quarter of a masked read's CPU. Built once, with bound parameters, so that SQLAlchemy's
# cache key is memoised rather than computed on every read.
_GRANTS = select(AccessRequest.id, AccessRequest.fields, AccessRequest.expires_at,
                 AccessRequest.decided_by).where(
    AccessRequest.requester == bindparam("requester"),
    AccessRequest.status == AccessRequestStatus.APPROVED,
    AccessRequest.subject_id == bindparam("subject_id"),
    AccessRequest.purpose == bindparam("purpose"))
_GRANTS_FOR_RECORD = _GRANTS.where(or_(AccessRequest.record_id.is_(None),
                                       AccessRequest.record_id == bindparam("record_id")))
_GRANTS_FOR_SUBJECT = _GRANTS.where(AccessRequest.record_id.is_(None))


def grants_exist(record_id: InstrumentedAttribute[str],
                 subject_id: InstrumentedAttribute[str]) -> ColumnElement[bool]:
    """Whether the caller holds any approved grant (in time or past its end) for a record, as
    a column another domain's statement may carry, correlated to its record's id and subject
    (bound parameters `grant_requester` and `grant_purpose`). Reads find none most of the time
    and then skip `active_grants`; where there is one, `active_grants` looks (and expires)."""
    return exists().where(
        AccessRequest.requester == bindparam("grant_requester"),
        AccessRequest.status == AccessRequestStatus.APPROVED,
        AccessRequest.subject_id == subject_id,
        AccessRequest.purpose == bindparam("grant_purpose"),
        or_(AccessRequest.record_id.is_(None), AccessRequest.record_id == record_id),
    ).label("pgw_grants_exist")


def active_grants(session: Session, *, caller: Caller, subject_id: str, purpose: str,
                  record_id: str | None = None) -> dict[str, str]:
    """Fields the caller may read in clear through approved grants: field -> why. Grants
    found past their end are expired on the way."""
    now = utcnow()
    query = _GRANTS_FOR_RECORD if record_id is not None else _GRANTS_FOR_SUBJECT
    params = {"requester": caller.sub, "subject_id": subject_id, "purpose": purpose}
    if record_id is not None:
        params["record_id"] = record_id
    granted: dict[str, str] = {}
    for request in list(session.execute(query, params)):
        if request.expires_at is None or request.expires_at <= now:
            expired = session.get(AccessRequest, request.id)
            if expired is not None:
                _expire(session, expired)
            continue
        for name in request.fields:
            granted[name] = (f"elevated access {request.id} approved by {request.decided_by} "
                             f"until {request.expires_at.isoformat()}")
    return granted


def listing(session: Session, *, caller: Caller, status: AccessRequestStatus | None,
            limit: int, after: Position | None = None) -> list[AccessRequest]:
    """Every request for approvers; one's own requests for everyone else. Newest first (then
    by id), past `after`."""
    expire_due(session, requester=None if caller.has(Scope.ACCESS_APPROVE) else caller.sub)
    query = keyset(select(AccessRequest), sort=AccessRequest.created_at, id=AccessRequest.id,
                   after=after, descending=True).limit(limit)
    if not caller.has(Scope.ACCESS_APPROVE):
        query = query.where(AccessRequest.requester == caller.sub)
    if status is not None:
        query = query.where(AccessRequest.status == status)
    return list(session.scalars(query))


def erase_subject(session: Session, *, subject_id: str) -> int:
    """Delete every access request about the subject (erasure); how many."""
    deleted: int = session.execute(delete(AccessRequest).where(
        AccessRequest.subject_id == subject_id)).rowcount  # type: ignore[attr-defined]
    return deleted
