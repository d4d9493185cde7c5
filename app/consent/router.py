from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Response
from fastapi import Path as PathParam

from app import idempotency
from app.audit import service as audit
from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.consent import service
from app.consent.decision import decide
from app.consent.models import ConsentEvent
from app.consent.schemas import (
    ConsentIn,
    ConsentsOut,
    NoticeIn,
    NoticeOut,
    OptOutOut,
    ReceiptedOut,
    ReceiptKeyOut,
)
from app.deps import PolicyDep, ReceiptSignerDep, RuntimeDep, SessionDep, receipt_signer
from app.errors import Conflict, ServiceUnavailable, problems
from app.keys.signing import Signer
from app.policy.loader import Policy
from app.policy.models import LegalBasis
from app.schemas import SubjectIdCheck

router = APIRouter(tags=["consent"])
Writer = Annotated[Caller, Depends(RequireScope(Scope.CONSENT_WRITE))]
Reader = Annotated[Caller, Depends(RequireScope(Scope.CONSENT_READ))]
SubjectPath = Annotated[str, PathParam(min_length=1, max_length=255), SubjectIdCheck]
IdempotencyHeader = Annotated[str | None, Header(alias=idempotency.HEADER)]


def _receipted(event: ConsentEvent, signer: Signer, policy: Policy) -> dict[str, Any]:
    return {"event_id": event.id, "subject_id": event.subject_id, "purpose": event.purpose,
            "state": event.event, "receipt": service.receipt(event, signer, policy.version)}


@router.post("/v1/notices", status_code=201, response_model=NoticeOut,
             responses=problems(Conflict))
def register_notice(body: NoticeIn, session: SessionDep, caller: Writer) -> NoticeOut:
    """Register the text shown to subjects; consents name the notice and version they answer."""
    notice = service.register_notice(session, caller=caller, **body.model_dump())
    return NoticeOut(notice_id=notice.notice_id, version=notice.version,
                     language=notice.language, sha256=notice.sha256,
                     requires_reconsent=notice.requires_reconsent)


@router.post("/v1/consents", status_code=201, response_model=ReceiptedOut,
             responses=problems(Conflict, ServiceUnavailable))
def grant(body: ConsentIn, session: SessionDep, caller: Writer, runtime: RuntimeDep,
          response: Response, idempotency_key: IdempotencyHeader = None) -> ReceiptedOut:
    """Record a consent and return its signed receipt. Honours `Idempotency-Key`."""
    claimed = idempotency.begin(session, caller=caller, key=idempotency_key,
                                route="POST /v1/consents", body=body.model_dump(mode="json"),
                                settings=runtime.settings,
                                subject_id=body.subject_id)
    if claimed is not None and claimed.response is not None:  # a replay: nothing recorded again
        return ReceiptedOut.model_validate(idempotency.replay(claimed, response, 201))
    signer = receipt_signer(runtime)  # fail before recording anything when it cannot sign
    grant_ = service.Grant(
        **body.model_dump(exclude={"evidence", "guardian"}),
        evidence=service.Evidence(**body.evidence.model_dump()),
        guardian=service.Guardian(**body.guardian.model_dump()) if body.guardian else None)
    event = service.record_grant(session, runtime.policy, caller=caller, grant=grant_,
                                 hash_key=runtime.pii_hash_key)
    result = _receipted(event, signer, runtime.policy)
    headers = {"Location": f"/v1/subjects/{event.subject_id}/consents"}
    if claimed is not None:
        idempotency.remember(claimed, 201, result, headers)
    response.headers.update(headers)
    return ReceiptedOut.model_validate(result)


@router.post("/v1/subjects/{subject_id}/consents/{purpose}/withdraw",
             response_model=ReceiptedOut)
def withdraw(subject_id: SubjectPath, purpose: str, session: SessionDep, caller: Writer,
             signer: ReceiptSignerDep, policy: PolicyDep) -> ReceiptedOut:
    """Withdraw consent: one call, nothing else to provide. Takes effect for the next request."""
    event = service.record_withdrawal(session, policy, caller=caller,
                                      subject_id=subject_id, purpose=purpose)
    return ReceiptedOut.model_validate(_receipted(event, signer, policy))


@router.post("/v1/subjects/{subject_id}/opt-out", response_model=OptOutOut)
def opt_out(subject_id: SubjectPath, session: SessionDep, caller: Writer,
            signer: ReceiptSignerDep, policy: PolicyDep,
            sec_gpc: Annotated[str | None, Header(alias="Sec-GPC")] = None) -> OptOutOut:
    """Opt out of every sale or sharing of data; a `Sec-GPC: 1` signal is recorded as such."""
    events = service.record_opt_out(session, policy, caller=caller,
                                    subject_id=subject_id, gpc=sec_gpc == "1")
    return OptOutOut.model_validate({
        "subject_id": subject_id, "gpc": sec_gpc == "1",
        "withdrawn": [_receipted(event, signer, policy) for event in events]})


@router.get("/v1/subjects/{subject_id}/consents", response_model=ConsentsOut)
def consents(subject_id: SubjectPath, session: SessionDep, caller: Reader,
             policy: PolicyDep) -> ConsentsOut:
    """Current state per consent-based purpose, with the decision it gives, and full history."""
    events = service.history(session, subject_id)
    purposes = {}
    for purpose, spec in policy.body.purposes.items():
        if spec.legal_basis is not LegalBasis.CONSENT:
            continue
        latest = next((e for e in reversed(events) if e.purpose == purpose), None)
        decision = decide(session, policy, subject_id=subject_id, purpose=purpose)
        purposes[purpose] = {"state": latest.event if latest else "none",
                             "allowed": decision.allowed, "reason": decision.reason,
                             "detail": decision.detail,
                             "expires_at": service.event_dict(latest)["expires_at"]
                             if latest else None}
    audit.record(session, caller=caller, action="consent.read", subject_id=subject_id,
                 details={"events": len(events)})
    return ConsentsOut.model_validate({"subject_id": subject_id, "purposes": purposes,
                                       "history": [service.event_dict(e) for e in events]})


@router.get("/v1/consents/receipt-key", response_model=ReceiptKeyOut)
def receipt_key(caller: Reader, signer: ReceiptSignerDep) -> ReceiptKeyOut:
    """The public key that verifies consent receipts (EdDSA, Ed25519)."""
    return ReceiptKeyOut(kid=signer.key_id, alg="EdDSA", public_key_pem=signer.public_pem())
