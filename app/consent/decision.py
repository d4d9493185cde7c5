"""May this subject's data be processed for this purpose now? And if not, why not.

The records API asks this on every write and read. Each denial has a stable reason a client can
act on: consent-required, consent-withdrawn, consent-expired, separate-consent-required,
guardian-consent-required, consent-outdated (the notice changed since: PIPL art. 14).
Purposes on other legal bases need no consent, and the decision names the basis that applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from app.clock import utcnow
from app.consent.models import ConsentEventKind
from app.consent.service import current, latest_reconsent_version
from app.policy.loader import Policy
from app.policy.models import LegalBasis

# every reason a denial gives (the `type` of the 403 a refused write or read answers with)
DENIALS = ("consent-required", "consent-withdrawn", "consent-expired",
           "separate-consent-required", "guardian-consent-required", "consent-outdated")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str  # "legal-basis" or "consent" when allowed; the denial reason otherwise
    legal_basis: str
    detail: str
    consent_event_id: int | None = None


def decide(session: Session, policy: Policy, *, subject_id: str, purpose: str,
           sensitive: bool = False, age: int | None = None, jurisdiction: str | None = None,
           at: datetime | None = None) -> Decision:
    spec = policy.body.purposes[purpose]
    basis = spec.legal_basis.value
    if spec.legal_basis is not LegalBasis.CONSENT:
        return Decision(True, "legal-basis", basis,
                        f"purpose {purpose!r} relies on {basis}; no consent is needed")
    at = at or utcnow()
    event = current(session, subject_id, purpose)
    if event is None:
        return Decision(False, "consent-required", basis,
                        f"the subject has not consented to {purpose!r}")
    if event.event == ConsentEventKind.WITHDRAWN:
        return Decision(False, "consent-withdrawn", basis,
                        f"the subject withdrew consent to {purpose!r}", event.id)
    if event.event == ConsentEventKind.EXPIRED or (event.expires_at is not None
                                                   and event.expires_at <= at):
        return Decision(False, "consent-expired", basis,
                        f"consent to {purpose!r} expired; ask again", event.id)
    if (spec.separate_consent or sensitive) and not event.separate:
        return Decision(False, "separate-consent-required", basis,
                        f"{purpose!r} with this data needs separate consent", event.id)
    law = policy.body.jurisdictions.get(jurisdiction or event.jurisdiction or "")
    subject_age = age if age is not None else event.subject_age
    if law and subject_age is not None and subject_age < law.age_of_digital_consent and \
            not event.guardian:
        return Decision(False, "guardian-consent-required", basis,
                        f"the subject is under {law.age_of_digital_consent}: a guardian must "
                        "consent", event.id)
    if event.notice_id and (event.notice_version or 0) < \
            latest_reconsent_version(session, event.notice_id):
        return Decision(False, "consent-outdated", basis,
                        f"notice {event.notice_id!r} changed since the subject consented; "
                        "ask again", event.id)
    return Decision(True, "consent", basis, f"consent to {purpose!r} is in force", event.id)
