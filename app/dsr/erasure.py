"""Erasure: every copy of a subject's data made unreadable, with proof.

Steps, each committed with its marker on the request, so a worker killed anywhere resumes
where the last commit left it and repeats nothing that matters (each step is idempotent):

1. `records`: in batches, records deleted with their blind indexes; records a law requires us
   to keep are restricted instead, stripped to the fields that law needs, and deleted by the
   retention sweep when that period ends.
2. `copies`: exports, elevated-access requests and stored idempotent responses about the
   subject deleted.
3. `keys`: the subject's data keys destroyed (crypto-shredding): whatever was returned to
   upstream systems, or sits in backups, can no longer be decrypted.
4. `completed`: tombstone, signed certificate, webhook events, `dsr.erasure.completed`, once.

A legal hold puts the request `on_hold` before any step; it resumes when the hold ends.
"""

from __future__ import annotations

import jwt
from sqlalchemy import delete
from sqlalchemy.orm import Session

from app import idempotency
from app.access import service as access
from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import isoformat, utcnow
from app.consent import service as consent
from app.dsr import events, service
from app.dsr.holds import subject_hold_reason
from app.dsr.models import DsrExport, DsrRequest, DsrStatus, Tombstone
from app.errors import NotFound
from app.jobs.faults import crash_point
from app.keys import shred
from app.keys.fields import decrypt_field, encrypt_field, is_protected
from app.keys.keyring import Keyring
from app.keys.signing import Signer
from app.policy.loader import Policy
from app.policy.models import LegalBasis, RecordType
from app.privacy import service as privacy
from app.records import service as records
from app.records import storage
from app.records.service import Record
from app.runtime import Transaction
from app.webhooks import outbox
from app.webhooks.events import Event

BATCH = 200
CALLER = Caller.system("dsr-erasure")


def retained_fields(policy: Policy, spec: RecordType | None) -> set[str] | None:
    """The fields a law requires us to keep for this record type, or None if none is kept."""
    if spec is None or not spec.retention.legal_basis:
        return None
    legal = {name for name, purpose in policy.body.purposes.items()
             if purpose.legal_basis is LegalBasis.LEGAL_OBLIGATION}
    return {name for name, field in spec.fields.items() if legal & set(field.purposes)}


def retention_subject(subject_id: str) -> str:
    """Whose key protects encrypted fields kept by law after the subject's own key is gone."""
    return f"retained:{subject_id}"


def _keep(session: Session, keyring: Keyring, record: Record, keep: set[str]) -> None:
    """Strip a record to the fields a law requires; re-key the encrypted ones among them."""
    context = storage.record_context(record.id)
    data = {}
    for name, value in record.data.items():
        if name not in keep:
            continue
        if is_protected(value):
            clear = decrypt_field(session, keyring, subject_id=record.subject_id, field=name,
                                  context=context, token=value)
            value = encrypt_field(session, keyring, subject_id=retention_subject(
                record.subject_id), field=name, context=context, value=clear)
        data[name] = value
    records.strip_to(session, record, data)
    record.restricted_at = record.restricted_at or utcnow()
    record.erased_at = utcnow()


def _erase_batch(session: Session, policy: Policy, keyring: Keyring, dsr: DsrRequest) -> bool:
    """One batch of the subject's records; False when none is left."""
    cursor = dsr.result.get("cursor", "")
    batch = records.for_subject(session, dsr.subject_id, after=cursor, limit=BATCH, lock=True)
    if not batch:
        return False
    result = dict(dsr.result)
    for record in batch:
        keep = retained_fields(policy, policy.body.record_types.get(record.record_type))
        if keep is not None and record.deidentified_at is None:
            _keep(session, keyring, record, keep)
            key = f"retained:{record.record_type}"
            result[key] = result.get(key, 0) + 1
        else:
            records.delete_record(session, record)
            result["records_deleted"] = result.get("records_deleted", 0) + 1
    result["cursor"] = batch[-1].id
    dsr.result = result
    return True


def _on_hold(session: Session, dsr: DsrRequest, reason: str) -> None:
    if dsr.status != DsrStatus.ON_HOLD:
        dsr.status = DsrStatus.ON_HOLD
        service.add_event(session, dsr, "on_hold", actor=CALLER.sub,
                          details={"hold": reason.split(":", 1)[0]})
        audit.record(session, caller=CALLER, action="dsr.on_hold", subject_id=dsr.subject_id,
                     resource=f"dsr:{dsr.id}", details={"type": dsr.type})


def _start(session: Session, dsr: DsrRequest) -> bool:
    """False if the request is closed or a legal hold stops it."""
    if dsr.status in (DsrStatus.COMPLETED, DsrStatus.REJECTED):
        return False
    reason = subject_hold_reason(session, dsr.subject_id)
    if reason:
        _on_hold(session, dsr, reason)
        return False
    if dsr.status != DsrStatus.IN_PROGRESS:
        dsr.status = DsrStatus.IN_PROGRESS
        service.add_event(session, dsr, "started", actor=CALLER.sub)
    return True


def certificate(signer: Signer, dsr: DsrRequest, *, subject_digest: str,
                policy: Policy) -> str:
    """A JWS (EdDSA) anyone with the published receipt key can verify."""
    result = dsr.result
    claims = {
        "iss": "privacy-gateway", "typ": "erasure-certificate", "jti": dsr.id,
        "subject_digest": subject_digest, "request": {"id": dsr.id,
                                                       "jurisdiction": dsr.jurisdiction,
                                                       "submitted_at": isoformat(dsr.submitted_at)},
        "erased_at": isoformat(utcnow()), "records_deleted": result.get("records_deleted", 0),
        "blind_indexes_deleted": True,
        "records_retained": {k.split(":", 1)[1]: v for k, v in result.items()
                             if k.startswith("retained:")},
        "retained_because": {name: spec.retention.legal_basis
                             for name, spec in policy.body.record_types.items()
                             if f"retained:{name}" in result},
        "copies_deleted": result.get("copies_deleted", 0),
        "keys_destroyed": result.get("keys_destroyed", 0),
        "consent_events_kept": result.get("consent_events_kept", 0),
        "policy_version": policy.version,
    }
    return jwt.encode(claims, signer.private_key, algorithm="EdDSA",
                      headers={"kid": signer.key_id, "typ": "JWT"})


def run(transaction: Transaction, policy: Policy, keyring: Keyring, signer: Signer | None,
        dsr_id: str) -> None:
    with transaction() as session:
        dsr = service.get(session, dsr_id, lock=True)
        if not _start(session, dsr):
            return
        step = dsr.step
    if step is None:
        while True:
            with transaction() as session:
                dsr = service.get(session, dsr_id, lock=True)
                more = _erase_batch(session, policy, keyring, dsr)
                if not more:
                    dsr.step = step = "records"
                crash_point("erasure.records.before_commit")
            crash_point("erasure.records")
            if not more:
                break
    if step == "records":
        with transaction() as session:
            dsr = service.get(session, dsr_id, lock=True)
            exports = session.execute(delete(DsrExport).where(
                DsrExport.subject_id == dsr.subject_id)).rowcount  # type: ignore[attr-defined]
            requests = access.erase_subject(session, subject_id=dsr.subject_id)
            requests += privacy.erase_subject(session, subject_id=dsr.subject_id)
            # responses kept for retried writes are copies too (sealed, but purged besides)
            replays = idempotency.forget_subject(session, subject_id=dsr.subject_id)
            dsr.result = {**dsr.result, "copies_deleted": exports + requests + replays}
            dsr.step = step = "copies"
        crash_point("erasure.copies")
    if step == "copies":
        with transaction() as session:
            dsr = service.get(session, dsr_id, lock=True)
            if not _start(session, dsr):  # a hold placed since the start still counts
                return
            try:
                shred.destroy_subject_keys(session, keyring, caller=CALLER,
                                           subject_id=dsr.subject_id)
                destroyed = dsr.result.get("keys_destroyed", 0) + 1
            except NotFound:  # no keys (never had any, or destroyed before a crash)
                destroyed = dsr.result.get("keys_destroyed", 0)
            dsr.result = {**dsr.result, "keys_destroyed": destroyed}
            dsr.step = step = "keys"
        crash_point("erasure.keys")
    if step == "keys":
        with transaction() as session:
            _complete(session, policy, keyring, signer, dsr_id)
        crash_point("erasure.completed")


def _complete(session: Session, policy: Policy, keyring: Keyring, signer: Signer | None,
              dsr_id: str) -> None:
    dsr = service.get(session, dsr_id, lock=True)
    if dsr.status == DsrStatus.COMPLETED:
        return
    if signer is None:
        raise RuntimeError("the receipt signing key is unavailable: no certificate can be "
                           "signed")
    digest = service.tombstone_digest(session, keyring, dsr.subject_id)
    if session.get(Tombstone, digest) is None:
        session.add(Tombstone(digest=digest, erased_at=utcnow(), dsr_id=dsr.id))
    kept = len(consent.history(session, dsr.subject_id))
    result = {k: v for k, v in dsr.result.items() if k != "cursor"}
    dsr.result = {**result, "consent_events_kept": kept}
    dsr.certificate = certificate(signer, dsr, subject_digest=digest, policy=policy)
    dsr.status, dsr.closed_at, dsr.step = DsrStatus.COMPLETED, utcnow(), "completed"
    service.add_event(session, dsr, "completed", actor=CALLER.sub)
    outbox.publish(session, Event.SUBJECT_ERASED, {"subject_id": dsr.subject_id,
                                                   "dsr_id": dsr.id})
    events.publish(session, dsr, Event.DSR_COMPLETED)
    audit.record(session, caller=CALLER, action="dsr.erasure.completed",
                 subject_id=dsr.subject_id, resource=f"dsr:{dsr.id}", details=dsr.result)
