"""What a verified person sees and does: their requests and deadlines, their consents, and the
opt-out of sale and sharing, each through the owning domain's service and audited with the
privacy centre as the actor on the subject's behalf."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.consent import service as consent
from app.dsr import export
from app.dsr import service as dsr_service
from app.errors import Invalid
from app.keys.keyring import Keyring
from app.policy.loader import Policy
from app.policy.models import LegalBasis
from app.privacy.service import CHANNELS, METHOD

TYPES = ("access", "portability", "rectification", "erasure", "objection")
EXPORTS = ("access", "portability")


def requests(session: Session, *, subject_id: str) -> list[dict[str, Any]]:
    found = dsr_service.listing(session, status=None, type=None, overdue=None,
                                subject_id=subject_id, limit=100)
    return [dsr_service.dsr_dict(dsr) for dsr in sorted(found, key=lambda d: d.submitted_at,
                                                         reverse=True)]


def one_request(session: Session, *, subject_id: str, dsr_id: str) -> Any | None:
    """The request if it is this subject's; None for another's or none (the same answer)."""
    listed = dsr_service.listing(session, status=None, type=None, overdue=None,
                                 subject_id=subject_id, limit=500)
    return next((dsr for dsr in listed if dsr.id == dsr_id), None)


def verification_fields(policy: Policy) -> set[str]:
    """Fields whose values verify a person here: indexed e-mail addresses and phone numbers.
    Changing one would let a person take over an address another customer verifies with (two
    holders match nobody, so neither gets a code), so the centre does not correct them: the
    privacy officer does, having checked the new address belongs to the person."""
    return {name for spec in policy.body.record_types.values()
            for name, field in spec.fields.items()
            if field.blind_index and str(field.type) in CHANNELS}


def correctable(policy: Policy) -> list[str]:
    """The fields a verified person may correct themselves."""
    return sorted({name for spec in policy.body.record_types.values() for name in spec.fields}
                  - verification_fields(policy))


def file_request(session: Session, policy: Policy, keyring: Keyring, *, caller: Caller,
                 subject_id: str, type: str, jurisdiction: str, language: str,
                 corrections: dict[str, Any] | None) -> Any:
    """File a request verified by the code the person just proved, so it runs at once."""
    held = sorted(set(corrections or ()) & verification_fields(policy))
    if held:
        audit.record(session, caller=caller, action="privacy.correction_refused",
                     outcome=audit.Outcome.DENIED, subject_id=subject_id,
                     details={"field": held[0], "reason": "verification address"})
        raise Invalid(f"{held[0]} verifies you here and is corrected by the privacy officer, "
                      "not in the privacy centre", field="field")
    return dsr_service.submit(
        session, policy, keyring, caller=caller, subject_id=subject_id, identifiers=None,
        type=type, jurisdiction=jurisdiction, corrections=corrections, language=language,
        verification={"method": METHOD, "reference": None})


def download(session: Session, keyring: Keyring, *, caller: Caller, dsr: Any,
             fmt: str) -> str | None:
    body = export.for_download(session, keyring, dsr, fmt) if dsr.type in EXPORTS else None
    if body is not None:
        audit.record(session, caller=caller, action="dsr.export_read",
                     subject_id=dsr.subject_id, resource=f"dsr:{dsr.id}",
                     details={"format": fmt, "by": "privacy-centre"})
    return body


def consents(session: Session, policy: Policy, *, subject_id: str,
             lang: str) -> list[dict[str, Any]]:
    """Each consent-based purpose: its state, and the notice and version last agreed to."""
    events = consent.history(session, subject_id)
    shown = []
    for purpose, spec in policy.body.purposes.items():
        if spec.legal_basis is not LegalBasis.CONSENT:
            continue
        mine = [e for e in events if e.purpose == purpose]
        latest = mine[-1] if mine else None
        granted = next((e for e in reversed(mine) if e.event == "granted"), None)
        shown.append({
            "purpose": purpose, "description": getattr(spec.description, lang),
            "sale_or_sharing": spec.ccpa_sale_or_sharing,
            "state": str(latest.event) if latest else "none",
            "channel": latest.channel if latest else None,
            "at": latest.captured_at if latest else None,
            "notice_id": granted.notice_id if granted else None,
            "notice_version": granted.notice_version if granted else None,
            "granted_at": granted.captured_at if granted else None})
    return shown


def withdraw(session: Session, policy: Policy, *, caller: Caller, subject_id: str,
             purpose: str) -> None:
    consent.record_withdrawal(session, policy, caller=caller, subject_id=subject_id,
                              purpose=purpose, channel="web")


def opted_out(session: Session, policy: Policy, *, subject_id: str) -> bool:
    """Whether no purpose that sells or shares data stands granted."""
    for purpose, spec in policy.body.purposes.items():
        if spec.ccpa_sale_or_sharing:
            latest = consent.current(session, subject_id, purpose)
            if latest is None or latest.event == "granted":
                return False
    return True


def opt_out(session: Session, policy: Policy, *, caller: Caller, subject_id: str,
            gpc: bool) -> bool:
    """Opt out of sale and sharing, unless already out; whether anything was recorded."""
    if opted_out(session, policy, subject_id=subject_id):
        return False
    consent.record_opt_out(session, policy, caller=caller, subject_id=subject_id, gpc=gpc)
    return True


def read_audited(session: Session, *, caller: Caller, subject_id: str, page: str) -> None:
    audit.record(session, caller=caller, action="privacy.page_read", subject_id=subject_id,
                 details={"page": page})


def denied(session: Session, *, caller: Caller, subject_id: str, dsr_id: str,
           operation: str) -> None:
    """A signed-in person asked for a request that is not theirs (or none): audited under
    their own subject, since whose it is, if anyone's, is not theirs to learn."""
    audit.record(session, caller=caller, action="privacy.access_denied",
                 outcome=audit.Outcome.DENIED, subject_id=subject_id,
                 resource=f"dsr:{dsr_id}", details={"operation": operation})
