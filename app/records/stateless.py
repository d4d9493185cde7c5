"""Stateless protection for upstreams that store data themselves: the same checks as a write,
and the same access rules as a read, with nothing stored here."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.deps import KeyringDep, PolicyDep, RuntimeDep, SessionDep
from app.errors import Invalid, problems
from app.keys.errors import KeyDamaged, KeyRetired, NoSuchKey, SubjectErased
from app.keys.fields import CiphertextInvalid
from app.keys.keyring import Keyring
from app.pii.deadline import ScanTimeout
from app.policy.models import Access, DataField
from app.records import storage
from app.records.access import (
    ConsentDenied,
    consent_for,
    field_access,
    refusal_audited,
    require_consent,
)
from app.records.schemas import ProtectedOut, ProtectIn, UnprotectedOut, UnprotectIn
from app.records.validation import PurposeNotAllowed, check_purpose, check_record, record_type

router = APIRouter(tags=["records"])
Writer = Annotated[Caller, Depends(RequireScope(Scope.RECORDS_WRITE))]
Reader = Annotated[Caller, Depends(RequireScope(Scope.RECORDS_READ))]


def _context(record_type_name: str) -> str:
    return f"protect:{record_type_name}"


@router.post("/v1/protect", response_model=ProtectedOut,
             responses=problems(PurposeNotAllowed, ConsentDenied, ScanTimeout))
def protect(body: ProtectIn, session: SessionDep, caller: Writer, keyring: KeyringDep,
            runtime: RuntimeDep) -> ProtectedOut:
    """Protect values for storage elsewhere; erasing the subject makes them unreadable."""
    policy = runtime.policy
    with refusal_audited(session, caller=caller, action="record.protect_refused",
                         purpose=body.purpose, subject_id=body.subject_id,
                         record_type=body.record_type):
        checked = check_record(policy, type_name=body.record_type, purpose=body.purpose,
                               data=body.data)
    spec = checked.record_type
    scans = storage.scan_texts(spec, checked.values, storage.scanner(runtime.settings))
    sensitive = any(spec.fields[name].sensitive for name in checked.values)
    decision = require_consent(session, policy, caller=caller, subject_id=body.subject_id,
                               purpose=body.purpose, sensitive=sensitive,
                               action="record.protect_refused", record_type=body.record_type)
    stored = storage.protect_values(session, keyring, subject_id=body.subject_id,
                                    context=_context(body.record_type), spec=spec,
                                    values=checked.values, hash_key=runtime.pii_hash_key,
                                    scans=scans, indexes=False)
    audit.record(session, caller=caller, action="record.protected", purpose=body.purpose,
                 subject_id=body.subject_id, resource=f"record_type:{body.record_type}",
                 details={"fields": sorted(stored.data), "dropped": audit.names(checked.dropped),
                          "legal_basis": decision.legal_basis})
    return ProtectedOut.model_validate({
        "subject_id": body.subject_id, "record_type": body.record_type, "data": stored.data,
        "originals": stored.originals, "findings": stored.findings, "dropped": checked.dropped,
        "decision": {"legal_basis": decision.legal_basis, "reason": decision.reason}})


@router.post("/v1/unprotect", response_model=UnprotectedOut,
             responses=problems(PurposeNotAllowed, CiphertextInvalid, SubjectErased, KeyDamaged,
                                KeyRetired))
def unprotect(body: UnprotectIn, session: SessionDep, caller: Reader, keyring: KeyringDep,
              policy: PolicyDep) -> UnprotectedOut:
    """Reveal protected values, each field clear, masked or not at all by the caller's roles,
    the purpose and the subject's consent."""
    spec = record_type(policy, body.record_type)
    with refusal_audited(session, caller=caller, action="record.unprotect_refused",
                         purpose=body.purpose, subject_id=body.subject_id,
                         record_type=body.record_type):
        check_purpose(policy, spec, body.record_type, body.purpose)
    unknown = [name for name in body.data if name not in spec.fields]
    if unknown:
        raise Invalid(f"{body.record_type} has no field {unknown[0]!r}",
                      errors=[{"field": f"data.{n}", "reason": "unknown field"} for n in unknown])
    sensitive = any(spec.fields[name].sensitive for name in body.data)
    decision = consent_for(session, policy, caller=caller, subject_id=body.subject_id,
                           purpose=body.purpose, sensitive=sensitive,
                           action="record.unprotect_refused", record_type=body.record_type)
    data, access = {}, {}
    for name, stored in body.data.items():
        granted = field_access(policy, roles=caller.roles, purpose=body.purpose,
                               spec=spec.fields[name], consent=decision)
        access[name] = granted.as_dict()
        if granted.decision is not Access.DENIED:
            data[name] = _reveal(session, keyring, caller, body, name, spec.fields[name],
                                 stored, granted.decision)
    audit.record(session, caller=caller, action="record.unprotected", purpose=body.purpose,
                 subject_id=body.subject_id, resource=f"record_type:{body.record_type}",
                 details={"requested": audit.names(body.data), "returned": audit.names(data),
                          "masked": sorted(n for n, a in access.items()
                                           if a["decision"] == "masked")})
    return UnprotectedOut.model_validate({
        "subject_id": body.subject_id, "record_type": body.record_type, "data": data,
        "access": access})


def _reveal(session: Session, keyring: Keyring, caller: Caller, body: UnprotectIn, name: str,
            spec: DataField, stored: Any, access: Access) -> Any:
    """A value that does not open answers alike whether or not the subject has keys: only a
    key that existed and was destroyed says `subject-erased` (410). Anything else would tell
    whether someone is a customer to a caller presenting another subject's value."""
    try:
        return storage.reveal_value(session, keyring, subject_id=body.subject_id,
                                    context=_context(body.record_type), name=name, spec=spec,
                                    stored=stored, original=body.originals.get(name),
                                    clear=access is Access.CLEAR)
    except (CiphertextInvalid, NoSuchKey):
        audit.record(session, caller=caller, action="record.unprotect_refused",
                     outcome=audit.Outcome.DENIED, purpose=body.purpose,
                     subject_id=body.subject_id, resource=f"record_type:{body.record_type}",
                     details={"reason": "invalid-ciphertext", "field": name})
        raise CiphertextInvalid(
            f"data.{name} does not open for this subject, record type and field: it belongs to "
            "another, is malformed or was altered", errors=[
                {"field": f"data.{name}", "reason": "does not open for this subject"}]) from None
