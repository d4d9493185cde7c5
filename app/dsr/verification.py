"""Who the person behind a request is, and whether that is known well enough to act.

Anyone with `dsr:submit` can file a request, but only a caller trusted to verify identities
(scope `dsr:verify`) can assert that the person was verified, by a method the policy lists
(`policies/verification.yaml`) whose level reaches what the request's type needs. Until then
the request is `unverified` and does nothing: no export is built, nothing is erased.

A request names its subject by id or by identifiers. Identifiers that match nobody, or more
than one subject, still give a request of the same shape and status as a match (202,
`unverified` or `received`), so that submitting is no way to learn whether someone is a
customer; it is bound to a placeholder subject that holds nothing, which only `dsr:manage`
callers see.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.auth.scopes import Scope
from app.clock import utcnow
from app.dsr import events
from app.dsr.models import DsrRequest, DsrStatus
from app.errors import Conflict, Invalid
from app.jobs import queue
from app.keys.fields import BLIND_INDEX_KEY, blind_index, encrypt_field
from app.keys.keyring import Keyring
from app.policy.loader import Policy
from app.records import lookup
from app.webhooks.events import Event

UNVERIFIED = DsrStatus.UNVERIFIED
UNMATCHED = "unmatched:"  # identifiers that match no subject
AMBIGUOUS = "ambiguous:"  # identifiers that match several: a manager asks for subject_id


def check_method(policy: Policy, method: str) -> None:
    methods = policy.body.verification.methods
    if method not in methods:
        raise Invalid(f"unknown verification method {method!r}; the policy lists: "
                      f"{', '.join(sorted(methods)) or 'none'}", field="verification.method")


def trusted(policy: Policy, caller: Caller, *, method: str, dsr_type: str) -> bool:
    """Whether the caller's assertion verifies a request of this type."""
    return caller.has(Scope.DSR_VERIFY) and \
        policy.body.verification.suffices(method, dsr_type)


def resolve_subject(session: Session, keyring: Keyring, identifiers: dict[str, str]) -> str:
    """The one subject whose records hold these identifiers (through the blind indexes), or a
    placeholder that holds nothing when none or several match."""
    key = keyring.service_key(session, BLIND_INDEX_KEY)
    found: set[str] | None = None
    for kind, value in identifiers.items():
        digest = blind_index(key, kind, value)
        subjects = lookup.subjects_with(session, kind=kind, digest=digest)
        found = subjects if found is None else found & subjects
    if found and len(found) == 1:
        return found.pop()
    return (AMBIGUOUS if found else UNMATCHED) + secrets.token_hex(12)


def matched(subject_id: str) -> bool:
    """Whether `resolve_subject` found one subject, not a placeholder."""
    return not subject_id.startswith((UNMATCHED, AMBIGUOUS))


def verify(session: Session, policy: Policy, keyring: Keyring, *, caller: Caller,
           dsr: DsrRequest, method: str, reference: str | None) -> None:
    """Record a trusted caller's verification of the person and start the request."""
    check_method(policy, method)
    if dsr.status != UNVERIFIED:
        raise Conflict(f"the request is {dsr.status}; only unverified requests are verified")
    if dsr.subject_id.startswith(AMBIGUOUS):
        raise Conflict("the identifiers of this request match more than one data subject: "
                       "reject it and ask for a request naming the subject")
    if not policy.body.verification.suffices(method, dsr.type):
        level = policy.body.verification.required_level[dsr.type]
        audit.record(session, caller=caller, action="dsr.verification_refused",
                     outcome=audit.Outcome.DENIED, subject_id=dsr.subject_id,
                     resource=f"dsr:{dsr.id}", details={"type": dsr.type, "method": method})
        raise Invalid(f"{method!r} does not suffice for a request of type {dsr.type!r}, which "
                      f"needs level {level}", field="method")
    mark_verified(session, policy, caller=caller, dsr=dsr, method=method, reference=reference)
    # what the verifier asserted replaces the submitter's claim, under the subject's key
    dsr.verification = encrypt_field(
        session, keyring, subject_id=dsr.subject_id, field="verification",
        context=f"dsr:{dsr.id}", value=json.dumps({"method": method, "reference": reference}))
    from app.dsr.service import add_event, ref  # service imports this module

    dsr.status = DsrStatus.RECEIVED
    add_event(session, dsr, "verified", actor=caller.sub, details={"method": method})
    queue.enqueue(session, "dsr.run", {"dsr_id": dsr.id}, ref=ref(dsr.id))
    events.publish(session, dsr, Event.DSR_RECEIVED)


def mark_verified(session: Session, policy: Policy, *, caller: Caller, dsr: DsrRequest,
                  method: str, reference: str | None) -> None:
    dsr.verification_method, dsr.verified_by, dsr.verified_at = method, caller.sub, utcnow()
    audit.record(session, caller=caller, action="dsr.verified", subject_id=dsr.subject_id,
                 resource=f"dsr:{dsr.id}",
                 details={"type": dsr.type, "method": method,
                          "level": policy.body.verification.methods[method].level,
                          "reference_given": reference is not None})


def view(dsr: DsrRequest) -> dict[str, Any]:
    return {"method": dsr.verification_method, "verified": dsr.verified_at is not None,
            "verified_by": dsr.verified_by,
            "verified_at": dsr.verified_at.isoformat() if dsr.verified_at else None}
