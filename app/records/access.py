"""Least privilege per field: the most restrictive of what the caller's roles allow for the
field's category and the purpose, and what the subject's consent allows."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.consent.decision import Decision
from app.errors import Forbidden
from app.policy.loader import Policy
from app.policy.models import Access, DataField

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
                 consent: Decision) -> FieldAccess:
    if purpose not in spec.purposes:
        return FieldAccess(Access.DENIED, f"not used for purpose {purpose}")
    if not consent.allowed:
        return FieldAccess(Access.DENIED, consent.reason)
    granted = role_access(policy, roles, spec.category, purpose)
    if granted is Access.DENIED:
        return FieldAccess(Access.DENIED, f"no role of the caller may see {spec.category} data "
                                          f"for {purpose}")
    return FieldAccess(granted, f"role grants {granted.value} {spec.category} data for "
                                f"{purpose}; {consent.reason}")
