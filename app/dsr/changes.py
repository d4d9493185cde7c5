"""Rectification, restriction and objection: changes to the subject's records and consent."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.auth.guard import Caller
from app.clock import utcnow
from app.consent import service as consent
from app.consent.decision import Decision
from app.dsr import service
from app.dsr.models import DsrRequest
from app.policy.loader import Policy
from app.policy.models import LegalBasis
from app.records import service as records
from app.webhooks import outbox
from app.webhooks.events import Event

CALLER = Caller.system("dsr")
RECTIFICATION_BASIS = Decision(allowed=True, reason="legal-basis",
                               legal_basis=LegalBasis.LEGAL_OBLIGATION.value,
                               detail="the data subject's right to rectification "
                                      "(GDPR art. 16, PIPL art. 46)")


def rectify(session: Session, policy: Policy, keys: records.Keys,
            dsr: DsrRequest) -> dict[str, Any]:
    """Apply the corrections to every record of the subject that holds those fields for its
    purpose; downstream subscribers are told which fields changed (not the values)."""
    corrections = service.corrections_of(session, keys.keyring, dsr)
    changed: dict[str, list[str]] = {}
    for record in records.for_subject(session, dsr.subject_id, live_only=True, lock=True):
        spec = policy.body.record_types.get(record.record_type)
        if spec is None:
            continue
        data = {name: value for name, value in corrections.items()
                if name in spec.fields and record.purpose in spec.fields[name].purposes}
        if not data:
            continue
        records.rectify(session, policy, keys, caller=CALLER, record=record,
                        purpose=record.purpose, data=data, basis=RECTIFICATION_BASIS)
        changed[record.id] = sorted(data)
    fields = sorted({name for names in changed.values() for name in names})
    if changed:
        outbox.publish(session, Event.SUBJECT_RECTIFIED, {"subject_id": dsr.subject_id,
                                                          "dsr_id": dsr.id, "fields": fields,
                                                          "records": sorted(changed)})
    dsr.corrections = None  # applied: the request no longer needs to hold them
    return {"records_rectified": len(changed), "fields": fields,
            "not_held": sorted(set(corrections) - set(fields))}


def _restrict_records(session: Session, dsr: DsrRequest, purposes: set[str] | None
                      ) -> list[str]:
    """Keep the subject's records (or those collected for `purposes`) stored but unused;
    returns the ids of those newly restricted."""
    now, restricted = utcnow(), []
    for record in records.for_subject(session, dsr.subject_id, unrestricted_only=True,
                                      lock=True):
        if purposes is None or record.purpose in purposes:
            record.restricted_at = now
            restricted.append(record.id)
    return restricted


def restrict(session: Session, dsr: DsrRequest) -> dict[str, Any]:
    """Restriction of processing (GDPR art. 18): every record of the subject kept, unused;
    subscribers are told, so that their copies stop being used too."""
    restricted = _restrict_records(session, dsr, None)
    outbox.publish(session, Event.SUBJECT_RESTRICTED, {"subject_id": dsr.subject_id,
                                                       "dsr_id": dsr.id, "records": restricted})
    return {"records_restricted": len(restricted)}


def object_to_processing(session: Session, policy: Policy, dsr: DsrRequest) -> dict[str, Any]:
    """An objection (GDPR art. 21, PIPL art. 44, CCPA opt-out): every consent still given is
    withdrawn (under CCPA, every purpose that sells or shares data too), and the records
    processed on legitimate interests are restricted."""
    withdrawn = []
    for purpose in sorted({e.purpose for e in consent.history(session, dsr.subject_id)}):
        latest = consent.current(session, dsr.subject_id, purpose)
        if latest is not None and latest.event == "granted" and purpose in policy.body.purposes:
            consent.record_withdrawal(session, policy, caller=CALLER, subject_id=dsr.subject_id,
                                      purpose=purpose, channel="dsr")
            withdrawn.append(purpose)
    if dsr.jurisdiction == "CCPA":  # opting out of sale and sharing needs no earlier consent
        for event in consent.record_opt_out(session, policy, caller=CALLER,
                                            subject_id=dsr.subject_id, gpc=False):
            if event.purpose not in withdrawn:
                withdrawn.append(event.purpose)
    interests = {name for name, purpose in policy.body.purposes.items()
                 if purpose.legal_basis is LegalBasis.LEGITIMATE_INTEREST}
    restricted = _restrict_records(session, dsr, interests)
    outbox.publish(session, Event.SUBJECT_OBJECTED, {
        "subject_id": dsr.subject_id, "dsr_id": dsr.id, "consents_withdrawn": withdrawn,
        "records": restricted})
    return {"consents_withdrawn": withdrawn, "records_restricted": len(restricted)}
