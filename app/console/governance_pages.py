"""Legal holds (place, release), the retention plan of the next sweep, and, read-only, the
records of processing written from the policy and the status of the keys."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse

from app.audit import service as audit
from app.auth.scopes import Scope
from app.console.guard import TEMPLATES, ConsoleRoute, Form, Needs
from app.console.sessions import Staff
from app.deps import KeyringDep, PolicyDep, RuntimeDep, SessionDep
from app.dsr import holds
from app.dsr import service as dsr
from app.errors import Invalid
from app.keys.status import key_status
from app.policy.report import processing_records
from app.retention import sweep
from app.web import pages

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
Officer = Annotated[Staff, Depends(Needs(Scope.DSR_MANAGE))]
PolicyReader = Annotated[Staff, Depends(Needs(Scope.POLICY_READ))]
KeyAdmin = Annotated[Staff, Depends(Needs(Scope.KEYS_ADMIN))]


@router.get("/holds", response_class=HTMLResponse)
def hold_list(request: Request, staff: Officer, session: SessionDep,
              policy: PolicyDep) -> Response:
    found = [holds.hold_dict(h) for h in holds.listing(session, active_only=True, limit=300)]
    audit.record(session, caller=staff.caller, action="legal_hold.listed",
                 details={"count": len(found), "via": "console"})
    return pages.render(TEMPLATES, request, "holds.html", staff=staff, holds=found,
                        record_types=sorted(policy.body.record_types))


def _until(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise Invalid("until: give a date such as 2027-06-30", field="until") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.post("/holds")
def place_hold(staff: Officer, form: Form, session: SessionDep, policy: PolicyDep) -> Response:
    subject_id = form.get("subject_id", "").strip()[:255] or None
    record_type = form.get("record_type", "").strip()[:64] or None
    reason = form.get("reason", "").strip()
    if (subject_id is None) == (record_type is None):
        raise Invalid("give a subject or a record type, not both", field="subject_id")
    if not 5 <= len(reason) <= 2000:
        raise Invalid("give the reason for the hold (5 to 2000 characters)", field="reason")
    holds.place(session, policy, caller=staff.caller, subject_id=subject_id,
                record_type=record_type, reason=reason, until=_until(form.get("until", "")))
    return RedirectResponse("/console/holds", status_code=303)


@router.post("/holds/{hold_id}/release")
def release_hold(hold_id: Annotated[str, PathParam(min_length=1, max_length=40)],
                 staff: Officer, form: Form, session: SessionDep) -> Response:
    holds.release(session, caller=staff.caller, hold_id=hold_id)
    session.flush()
    dsr.resume_released(session, caller=staff.caller)  # requests the hold kept waiting
    return RedirectResponse("/console/holds", status_code=303)


@router.get("/retention", response_class=HTMLResponse)
def retention_plan(request: Request, staff: Officer, session: SessionDep,
                   runtime: RuntimeDep) -> Response:
    """What the next retention sweep would do now, changing nothing."""
    planned = sweep.plan(runtime.transaction, runtime.policy).as_dict()
    audit.record(session, caller=staff.caller, action="retention.planned",
                 details={"counts": planned, "via": "console"})
    return pages.render(TEMPLATES, request, "retention.html", staff=staff, plan=planned)


@router.get("/processing", response_class=HTMLResponse)
def processing(request: Request, staff: PolicyReader, policy: PolicyDep) -> Response:
    return pages.render(TEMPLATES, request, "processing.html", staff=staff,
                        report=processing_records(policy))


@router.get("/keys", response_class=HTMLResponse)
def keys(request: Request, staff: KeyAdmin, session: SessionDep,
         keyring: KeyringDep) -> Response:
    audit.record(session, caller=staff.caller, action="keys.status_read",
                 details={"via": "console"})
    return pages.render(TEMPLATES, request, "keys.html", staff=staff,
                        keys=key_status(session, keyring))
