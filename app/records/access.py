"""Least privilege per field: the most restrictive of what the caller's roles allow for the
field's category and the purpose, and what the subject's consent allows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.consent import service as consent_service
from app.consent.decision import DENIALS, Decision, decide
from app.errors import Forbidden
from app.policy.loader import Policy
from app.policy.models import Access, DataField, LegalBasis
from app.records.validation import PurposeNotAllowed

RANK = {Access.DENIED: 0, Access.MASKED: 1, Access.CLEAR: 2}


@dataclass(frozen=True)
class FieldAccess:
    decision: Access
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"decision": self.decision.value, "reason": self.reason}


class ConsentDenied(Forbidden):
    """403 whose `type` is the decision's reason, e.g. urn:pgw:problem:consent-withdrawn."""

    def __init__(self, decision: Decision, **extra: Any):
        super().__init__(decision.detail, legal_basis=decision.legal_basis, **extra)
        self.type = decision.reason
        self.title = decision.reason.replace("-", " ").capitalize()

    @classmethod
    def problem_types(cls) -> tuple[str, ...]:
        return DENIALS


@contextmanager
def refusal_audited(session: Session, *, caller: Caller, action: str, purpose: str,
                    subject_id: str, record_type: str) -> Iterator[None]:
    """A purpose that may not use the record type (403) leaves a denied entry under `action`."""
    try:
        yield
    except PurposeNotAllowed:
        audit.record(session, caller=caller, action=action, outcome=audit.Outcome.DENIED,
                     purpose=purpose, subject_id=subject_id,
                     details={"reason": "purpose-not-allowed", "record_type": record_type})
        raise


def consent_for(session: Session, policy: Policy, *, caller: Caller, subject_id: str,
                purpose: str, sensitive: bool, action: str, record_type: str) -> Decision:
    """The consent decision for using the subject's data for the purpose; a denial is audited
    under `action` (it outlives the refused request)."""
    decision = decide(session, policy, subject_id=subject_id, purpose=purpose,
                      sensitive=sensitive)
    if not decision.allowed:
        audit.record(session, caller=caller, action=action, outcome=audit.Outcome.DENIED,
                     purpose=purpose, subject_id=subject_id,
                     details={"reason": decision.reason, "record_type": record_type})
    return decision


def hold_consent(session: Session, policy: Policy, *, subject_id: str, purpose: str) -> None:
    """For a write that relies on the subject's consent to the purpose: a withdrawal now waits
    until this transaction ends, and one already committed is seen by the check that follows."""
    spec = policy.body.purposes.get(purpose)
    if spec is not None and spec.legal_basis is LegalBasis.CONSENT:
        consent_service.lock_state(session, subject_id=subject_id)


def require_consent(session: Session, policy: Policy, *, caller: Caller, subject_id: str,
                    purpose: str, sensitive: bool, action: str, record_type: str) -> Decision:
    """As `consent_for`, for a write: the consent state is held until the write commits
    (`hold_consent`), and a denial is a 403 whose type says what the client can do."""
    hold_consent(session, policy, subject_id=subject_id, purpose=purpose)
    decision = consent_for(session, policy, caller=caller, subject_id=subject_id,
                           purpose=purpose, sensitive=sensitive, action=action,
                           record_type=record_type)
    if not decision.allowed:
        raise ConsentDenied(decision)
    return decision


def role_access(policy: Policy, roles: tuple[str, ...], category: str, purpose: str) -> Access:
    """The widest access any of the caller's roles grants (nothing listed: denied)."""
    best = Access.DENIED
    for name in roles:
        role = policy.body.roles.get(name)
        if role is None:
            continue
        by_purpose = role.access.get(category, {})
        granted = by_purpose.get(purpose) or by_purpose.get("*") or Access.DENIED
        if RANK[granted] > RANK[best]:
            best = granted
    return best


def field_access(policy: Policy, *, roles: tuple[str, ...], purpose: str, spec: DataField,
                 consent: Decision, state: str | None = None,
                 grant: str | None = None) -> FieldAccess:
    """`state` is why the record may not be used at all (restricted, retention over);
    `grant` describes an approved elevated-access grant that covers this field."""
    if purpose not in spec.purposes:
        return FieldAccess(Access.DENIED, f"not used for purpose {purpose}")
    if state is not None:
        return FieldAccess(Access.DENIED, state)
    if not consent.allowed:
        return FieldAccess(Access.DENIED, consent.reason)
    if grant is not None:
        granted, why = Access.CLEAR, grant
    else:
        granted = role_access(policy, roles, spec.category, purpose)
        if granted is Access.DENIED:
            return FieldAccess(Access.DENIED, f"no role of the caller may see {spec.category} "
                                              f"data for {purpose}")
        why = f"role grants {granted.value} {spec.category} data for {purpose}"
    if granted is Access.CLEAR and spec.protection.startswith("mask:"):
        return FieldAccess(Access.MASKED, "stored masked: the clear value was never kept")
    return FieldAccess(granted, f"{why}; {consent.reason}")


def may_see(policy: Policy, *, roles: tuple[str, ...], purpose: str,
            fields: dict[str, DataField], granted: set[str]) -> bool:
    """Object-level authorisation: may this caller see any field of such a record for the
    purpose, consent aside? If not, the record is not found for them."""
    return any(purpose in spec.purposes and
               (name in granted or
                role_access(policy, roles, spec.category, purpose) is not Access.DENIED)
               for name, spec in fields.items())
