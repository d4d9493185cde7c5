"""Releasing and assessing datasets: the checks, the audit, and the refusal when the target
cannot be reached."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.datasets import anonymize as engine
from app.errors import GatewayError, Invalid
from app.policy.loader import Policy
from app.policy.models import Dataset, LegalBasis


class TargetUnreachable(GatewayError):
    status, type, title = 422, "anonymization-target-unreachable", "Target not reachable"


def spec_for(policy: Policy, record_type: str) -> Dataset:
    spec = policy.body.record_types.get(record_type)
    if spec is None:
        raise Invalid(f"unknown record type {record_type!r}", field="record_type")
    if spec.dataset is None:
        raise Invalid(f"the policy does not allow {record_type} to be released as a dataset",
                      field="record_type")
    return spec.dataset


def _check_purpose(policy: Policy, purpose: str) -> None:
    spec = policy.purpose(purpose)
    if spec.legal_basis is LegalBasis.CONSENT:
        # uploaded rows carry no subjects whose consent could be checked
        raise Invalid(f"{purpose} rests on consent: uploaded rows cannot show that every "
                      "subject gave it; release for a purpose with another legal basis",
                      field="purpose")


def release(session: Session, policy: Policy, *, caller: Caller, record_type: str,
            purpose: str, rows: Sequence[dict[str, Any]], k: int, l: int,  # noqa: E741
            max_suppression: float,
            progress: Callable[[int, int], None] = lambda done, total: None) -> engine.Release:
    """Anonymise uploaded rows; refused (and audited) when k and l cannot be reached."""
    spec = spec_for(policy, record_type)
    _check_purpose(policy, purpose)
    release_id = f"rel_{secrets.token_hex(12)}"
    selection = {"source": "upload", "record_type": record_type, "rows": len(rows)}
    try:
        result = engine.anonymize(rows, spec, k=k, l=l, max_suppression=max_suppression,
                                  progress=progress)
    except engine.Unreachable as exc:
        audit.record(session, caller=caller, action="dataset.refused", purpose=purpose,
                     outcome=audit.Outcome.DENIED, resource=f"dataset:{release_id}",
                     details={**selection, "k": k, "l": l, "max_suppression": max_suppression})
        raise TargetUnreachable(
            f"k={k} and l={l} cannot be reached with at most {max_suppression:.1%} of the "
            "records suppressed; nothing was released", closest=exc.best) from None
    result.report["release_id"] = release_id
    audit.record(session, caller=caller, action="dataset.released", purpose=purpose,
                 resource=f"dataset:{release_id}",
                 details={**selection, "k": k, "l": l, "max_suppression": max_suppression,
                          "released": result.report["released"],
                          "suppressed": result.report["suppressed"],
                          "levels": result.levels})
    return result


def assess(session: Session, policy: Policy, *, caller: Caller, record_type: str,
           rows: Sequence[dict[str, Any]], k: int, l: int) -> dict[str, Any]:  # noqa: E741
    spec = spec_for(policy, record_type)
    found = engine.assess(rows, spec, k=k, l=l)
    audit.record(session, caller=caller, action="dataset.assessed",
                 details={"record_type": record_type, "rows": len(rows), "k": found["k"],
                          "l": found["l"]})
    return found
