"""The data-subject request queue: by deadline, with what is overdue or due soon, each request's
timeline, and the officer's actions (extend, reject, retry, the erasure certificate)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse

from app.audit import service as audit
from app.auth.scopes import Scope
from app.clock import utcnow
from app.console.guard import TEMPLATES, ConsoleRoute, Form, Needs
from app.console.sessions import Staff
from app.deps import PolicyDep, RuntimeDep, SessionDep, SettingsDep
from app.dsr import service
from app.errors import Invalid, NotFound
from app.web import pages

router = APIRouter(prefix="/console/dsr", route_class=ConsoleRoute, include_in_schema=False)
Officer = Annotated[Staff, Depends(Needs(Scope.DSR_MANAGE))]
DsrId = Annotated[str, PathParam(min_length=1, max_length=40)]
STATUSES = ("unverified", "received", "in_progress", "on_hold", "completed", "rejected",
            "failed")


@router.get("", response_class=HTMLResponse)
def queue(request: Request, staff: Officer, session: SessionDep, settings: SettingsDep,
          status: Annotated[str | None, Query(max_length=20)] = None) -> Response:
    chosen = status if status in STATUSES else None
    now = utcnow()
    # a status is a StrEnum the dsr domain keeps to itself; its value compares equal
    found = service.listing(session, status=chosen, type=None,  # type: ignore[arg-type]
                            overdue=None, subject_id=None, limit=200, now=now)
    counts = service.deadline_counts(session, soon=timedelta(days=settings.dsr_due_soon_days),
                                     now=now)
    audit.record(session, caller=staff.caller, action="dsr.listed",
                 details={"count": len(found), "status": chosen, "type": None,
                          "overdue": None, "via": "console"})
    return pages.render(TEMPLATES, request, "dsr_queue.html", staff=staff, counts=counts,
                        requests=[service.dsr_dict(d, now=now) for d in found],
                        statuses=STATUSES, chosen=chosen,
                        soon_days=settings.dsr_due_soon_days)


@router.get("/{dsr_id}", response_class=HTMLResponse)
def detail(request: Request, dsr_id: DsrId, staff: Officer, session: SessionDep,
           policy: PolicyDep) -> Response:
    dsr = service.get(session, dsr_id)
    audit.record(session, caller=staff.caller, action="dsr.read", subject_id=dsr.subject_id,
                 resource=f"dsr:{dsr.id}", details={"type": dsr.type, "via": "console"})
    rules = policy.body.jurisdictions.get(dsr.jurisdiction)
    return pages.render(TEMPLATES, request, "dsr_detail.html", staff=staff,
                        dsr=service.dsr_dict(dsr), timeline=service.timeline(session, dsr),
                        step=dsr.step, may_extend=bool(rules and rules.extension),
                        has_certificate=dsr.certificate is not None)


def _reason(form: dict[str, str]) -> str:
    reason = form.get("reason", "").strip()
    if not 0 < len(reason) <= 2000:
        raise Invalid("give the reason the person is told (up to 2000 characters)",
                      field="reason")
    return reason


@router.post("/{dsr_id}/extend")
def extend(dsr_id: DsrId, staff: Officer, form: Form, session: SessionDep,
           policy: PolicyDep) -> Response:
    service.extend(session, policy, caller=staff.caller, dsr_id=dsr_id, reason=_reason(form))
    return RedirectResponse(f"/console/dsr/{dsr_id}", status_code=303)


@router.post("/{dsr_id}/reject")
def reject(dsr_id: DsrId, staff: Officer, form: Form, session: SessionDep) -> Response:
    service.reject(session, caller=staff.caller, dsr_id=dsr_id, reason=_reason(form))
    return RedirectResponse(f"/console/dsr/{dsr_id}", status_code=303)


@router.post("/{dsr_id}/retry")
def retry(dsr_id: DsrId, staff: Officer, form: Form, session: SessionDep) -> Response:
    service.retry(session, caller=staff.caller, dsr_id=dsr_id)
    return RedirectResponse(f"/console/dsr/{dsr_id}", status_code=303)


@router.get("/{dsr_id}/certificate")
def certificate(dsr_id: DsrId, staff: Officer, session: SessionDep,
                runtime: RuntimeDep) -> Response:
    """The signed erasure certificate as a file, with the key that verifies it."""
    dsr = service.get(session, dsr_id)
    if dsr.certificate is None:
        raise NotFound("no certificate: the request is not a completed erasure")
    audit.record(session, caller=staff.caller, action="dsr.certificate_read",
                 subject_id=dsr.subject_id, resource=f"dsr:{dsr.id}",
                 details={"via": "console"})
    signer = runtime.receipt_signer
    body = {"certificate": dsr.certificate, "key_id": signer.key_id if signer else None,
            "public_key": signer.public_pem() if signer else None}
    return Response(json.dumps(body, ensure_ascii=False, indent=2),
                    media_type="application/json", headers={
                        "Content-Disposition": f'attachment; filename="{dsr.id}-certificate.json"'})
