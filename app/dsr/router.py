"""Data-subject requests and legal holds over HTTP."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Header, Query, Response
from fastapi import Path as PathParam
from sqlalchemy.orm import Session

from app import idempotency
from app.audit import service as audit
from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.clock import utcnow
from app.db import Position
from app.deps import KeyringDep, PolicyDep, RuntimeDep, SessionDep
from app.dsr import export, holds, service, verification
from app.dsr.models import DsrExport, DsrRequest, DsrStatus
from app.dsr.schemas import (
    CertificateOut,
    DsrIn,
    DsrOut,
    DsrSubmittedOut,
    DsrType,
    LegalHoldIn,
    LegalHoldOut,
    ReasonIn,
    VerificationIn,
)
from app.errors import Conflict, GatewayError, NotFound, problems
from app.keys.errors import KeyDamaged, KeyRetired, SubjectErased
from app.schemas import Page, keyset_page

router = APIRouter(prefix="/v1/dsr", tags=["data-subject requests"])
holds_router = APIRouter(prefix="/v1/legal-holds", tags=["data-subject requests"])
Submitter = Annotated[Caller, Depends(RequireScope(Scope.DSR_SUBMIT))]
Manager = Annotated[Caller, Depends(RequireScope(Scope.DSR_MANAGE))]
Viewer = Annotated[Caller, Depends(RequireScope(Scope.DSR_MANAGE, Scope.DSR_SUBMIT))]
Verifier = Annotated[Caller, Depends(RequireScope(Scope.DSR_VERIFY))]
DsrId = Annotated[str, PathParam(min_length=1, max_length=40)]


class Gone(GatewayError):
    status, type, title = 410, "gone", "Gone"


class NotReady(GatewayError):
    status, type, title = 409, "not-ready", "Not ready yet"


def _visible(session: Session, caller: Caller, dsr_id: str, *, operation: str,
             verified_only: bool = False) -> DsrRequest:
    """The request, for those who manage requests or the service that submitted it (once the
    person was verified, where `verified_only`). Every refusal is audited."""
    dsr = session.get(DsrRequest, dsr_id)
    allowed = dsr is not None and (caller.has(Scope.DSR_MANAGE) or (
        dsr.submitted_by == caller.sub and not (verified_only and dsr.verified_at is None)))
    if dsr is None or not allowed:
        audit.record(session, caller=caller, action="dsr.access_denied",
                     outcome=audit.Outcome.DENIED,
                     subject_id=dsr.subject_id if dsr is not None else None,
                     resource=f"dsr:{dsr_id}", details={"operation": operation})
        raise NotFound("no such data-subject request")
    return dsr


@router.post("", status_code=202, response_model=DsrSubmittedOut,
             responses=problems(Conflict, SubjectErased))
def submit(body: DsrIn, session: SessionDep, caller: Submitter, keyring: KeyringDep,
           runtime: RuntimeDep, response: Response,
           idempotency_key: Annotated[str | None, Header(alias=idempotency.HEADER)] = None,
           ) -> DsrSubmittedOut:
    """Record a person's request; a job carries it out before the legal deadline once the
    person is verified (status `received`; `unverified` until then). Identifiers that match
    nobody give the same answer as a match. Honours `Idempotency-Key`: a retried submission
    gives the same request, not a second."""
    # the response names no subject and holds no personal data: it is stored in clear (the
    # keyring keys the hash of the body, which does)
    claimed = idempotency.begin(session, caller=caller, key=idempotency_key,
                                route="POST /v1/dsr", body=body.model_dump(mode="json"),
                                settings=runtime.settings, keyring=keyring)
    if claimed is not None and claimed.response is not None:
        return DsrSubmittedOut.model_validate(idempotency.replay(claimed, response, 202))
    dsr = service.submit(session, runtime.policy, keyring, caller=caller,
                         subject_id=body.subject_id,
                         identifiers=body.identifiers.given() if body.identifiers else None,
                         type=body.type, jurisdiction=body.jurisdiction,
                         verification=body.verification.model_dump(),
                         corrections=body.corrections,
                         language=body.language)
    result = {"id": dsr.id, "status": dsr.status, "due_at": dsr.due_at.isoformat()}
    headers = {"Location": f"/v1/dsr/{dsr.id}"}
    if claimed is not None:
        idempotency.remember(claimed, 202, result, headers)
    response.headers.update(headers)
    return DsrSubmittedOut.model_validate(result)


@router.get("", response_model=Page[DsrOut], response_model_exclude_unset=True)
def list_requests(session: SessionDep, caller: Manager,
                  status: Annotated[DsrStatus | None, Query()] = None,
                  type: Annotated[DsrType | None, Query()] = None,
                  overdue: Annotated[bool | None, Query()] = None,
                  subject_id: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100,
                  cursor: Annotated[str | None, Query(max_length=200)] = None) -> Page[DsrOut]:
    """Requests by deadline, soonest first."""
    found, following = keyset_page(
        lambda after, n: service.listing(session, status=status, type=type, overdue=overdue,
                                         subject_id=subject_id, limit=n, after=after),
        position=lambda d: Position(d.due_at, d.id), cursor=cursor, limit=limit)
    audit.record(session, caller=caller, action="dsr.listed", subject_id=subject_id,
                 details={"count": len(found), "status": status, "type": type,
                          "overdue": overdue})
    now = utcnow()
    return Page[DsrOut].model_validate({"items": [service.dsr_dict(d, now=now) for d in found],
                                        "next": following})


@router.get("/{dsr_id}", response_model=DsrOut, response_model_exclude_unset=True,
            responses=problems(NotFound))
def get_request(dsr_id: DsrId, session: SessionDep, caller: Viewer) -> DsrOut:
    """Status and, for `dsr:manage`, the subject and a timeline of every step, job attempts
    and their errors included."""
    dsr = _visible(session, caller, dsr_id, operation="read")
    audit.record(session, caller=caller, action="dsr.read", subject_id=dsr.subject_id,
                 resource=f"dsr:{dsr.id}", details={"type": dsr.type})
    if not caller.has(Scope.DSR_MANAGE):
        return DsrOut.model_validate(service.submitter_view(dsr))
    return DsrOut.model_validate(service.dsr_dict(dsr) |
                                 {"timeline": service.timeline(session, dsr)})


@router.post("/{dsr_id}/verify", response_model=DsrOut, response_model_exclude_unset=True,
             responses=problems(NotFound, Conflict))
def verify(dsr_id: DsrId, body: VerificationIn, session: SessionDep, caller: Verifier,
           keyring: KeyringDep, policy: PolicyDep) -> DsrOut:
    """Assert that the person behind an unverified request was verified, by a method the
    policy lists that suffices for the request's type; the request then runs."""
    dsr = service.get(session, dsr_id, lock=True)
    verification.verify(session, policy, keyring, caller=caller,
                        dsr=dsr, method=body.method, reference=body.reference)
    if not caller.has(Scope.DSR_MANAGE):
        return DsrOut.model_validate(service.submitter_view(dsr))
    return DsrOut.model_validate(service.dsr_dict(dsr))


@router.post("/{dsr_id}/extend", response_model=DsrOut, response_model_exclude_unset=True,
             responses=problems(NotFound, Conflict))
def extend(dsr_id: DsrId, body: ReasonIn, session: SessionDep, caller: Manager,
           policy: PolicyDep) -> DsrOut:
    """Extend the deadline once, within the first period, with the reason the person is told."""
    dsr = service.extend(session, policy, caller=caller,
                         dsr_id=dsr_id, reason=body.reason)
    return DsrOut.model_validate(service.dsr_dict(dsr))


@router.post("/{dsr_id}/reject", response_model=DsrOut, response_model_exclude_unset=True,
             responses=problems(NotFound, Conflict))
def reject(dsr_id: DsrId, body: ReasonIn, session: SessionDep,
           caller: Manager) -> DsrOut:
    return DsrOut.model_validate(service.dsr_dict(service.reject(
        session, caller=caller, dsr_id=dsr_id, reason=body.reason)))


@router.post("/{dsr_id}/retry", response_model=DsrOut, response_model_exclude_unset=True,
             responses=problems(NotFound, Conflict))
def retry(dsr_id: DsrId, session: SessionDep, caller: Manager) -> DsrOut:
    """Run a failed request again, once what made it fail is fixed; it resumes where it
    stopped."""
    return DsrOut.model_validate(service.dsr_dict(
        service.retry(session, caller=caller, dsr_id=dsr_id)))


@router.get("/{dsr_id}/export",
            responses=problems(NotFound, Gone, NotReady, KeyDamaged, KeyRetired)
            | {200: {"content": {"text/html": {}}}})
def get_export(dsr_id: DsrId, session: SessionDep, caller: Viewer, keyring: KeyringDep,
               format: Annotated[Literal["json", "html"], Query()] = "json") -> Response:
    """The access or portability export, while its download window lasts: for `dsr:manage`,
    or the submitter of a verified request."""
    dsr = _visible(session, caller, dsr_id, operation="export", verified_only=True)
    if dsr.type not in ("access", "portability"):
        raise NotFound("this request has no export")
    stored = session.get(DsrExport, dsr.id)
    if stored is None:
        if dsr.status == DsrStatus.COMPLETED:
            raise Gone("the export has expired or the subject was erased")
        raise NotReady(f"the export is not ready: the request is {dsr.status}")
    if stored.expires_at <= utcnow():
        raise Gone("the export has expired")
    body = export.read(session, keyring, stored, format)
    audit.record(session, caller=caller, action="dsr.export_read", subject_id=dsr.subject_id,
                 resource=f"dsr:{dsr.id}", details={"format": format})
    media = "application/json" if format == "json" else "text/html; charset=utf-8"
    return Response(body, media_type=media, headers={
        "Cache-Control": "no-store",
        "Content-Disposition": f'attachment; filename="{dsr.id}.{format}"'})


@router.get("/{dsr_id}/certificate", response_model=CertificateOut,
            responses=problems(NotFound))
def certificate(dsr_id: DsrId, session: SessionDep, caller: Viewer,
                runtime: RuntimeDep) -> CertificateOut:
    """The signed certificate of a completed erasure (verify with the receipt key)."""
    dsr = _visible(session, caller, dsr_id, operation="certificate", verified_only=True)
    if dsr.certificate is None:
        raise NotFound("no certificate: the request is not a completed erasure")
    audit.record(session, caller=caller, action="dsr.certificate_read",
                 subject_id=dsr.subject_id, resource=f"dsr:{dsr.id}")
    signer = runtime.receipt_signer
    return CertificateOut.model_validate({
        "certificate": dsr.certificate, "key_id": signer.key_id if signer else None,
        "public_key": signer.public_pem() if signer else None})


@holds_router.post("", status_code=201, response_model=LegalHoldOut,
                   response_model_exclude_unset=True)
def place_hold(body: LegalHoldIn, session: SessionDep, caller: Manager,
               policy: PolicyDep) -> LegalHoldOut:
    """Keep a subject's data, or every record of a type, from erasure and retention deletion."""
    hold = holds.place(session, policy, caller=caller,
                       subject_id=body.subject_id, record_type=body.record_type,
                       reason=body.reason, until=body.until)
    return LegalHoldOut.model_validate(holds.hold_dict(hold))


@holds_router.get("", response_model=Page[LegalHoldOut], response_model_exclude_unset=True)
def list_holds(session: SessionDep, caller: Manager,
               subject_id: Annotated[str | None, Query(min_length=1, max_length=255)] = None,
               active: Annotated[bool, Query()] = True,
               limit: Annotated[int, Query(ge=1, le=500)] = 100,
               cursor: Annotated[str | None, Query(max_length=200)] = None) -> Page[LegalHoldOut]:
    """Holds, newest first."""
    found, following = keyset_page(
        lambda after, n: holds.listing(session, subject_id=subject_id, active_only=active,
                                       limit=n, after=after),
        position=lambda h: Position(h.created_at, h.id), cursor=cursor, limit=limit)
    return Page[LegalHoldOut].model_validate({"items": [holds.hold_dict(h) for h in found],
                                              "next": following})


@holds_router.post("/{hold_id}/release", response_model=LegalHoldOut,
                   response_model_exclude_unset=True,
                   responses=problems(NotFound, Conflict))
def release_hold(hold_id: Annotated[str, PathParam(min_length=1, max_length=40)],
                 session: SessionDep, caller: Manager) -> LegalHoldOut:
    """End a hold; requests it kept on hold resume."""
    hold = holds.release(session, caller=caller, hold_id=hold_id)
    session.flush()
    resumed = service.resume_released(session, caller=caller)
    return LegalHoldOut.model_validate(holds.hold_dict(hold) | {"resumed_requests": resumed})
