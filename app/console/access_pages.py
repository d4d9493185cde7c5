"""Elevated access: pending requests to decide (never one's own: the service refuses) and the
grants in force with their expiry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, RedirectResponse

from app.access import service
from app.access.schemas import request_dict
from app.audit import service as audit
from app.auth.scopes import Scope
from app.console.guard import TEMPLATES, ConsoleRoute, Form, Needs
from app.console.sessions import Staff
from app.deps import SessionDep
from app.web import pages

router = APIRouter(prefix="/console/access", route_class=ConsoleRoute, include_in_schema=False)
Approver = Annotated[Staff, Depends(Needs(Scope.ACCESS_APPROVE))]
RequestId = Annotated[str, PathParam(min_length=1, max_length=40)]


@router.get("", response_class=HTMLResponse)
def overview(request: Request, staff: Approver, session: SessionDep) -> Response:
    found = service.listing(session, caller=staff.caller, status=None, limit=300)
    shown = [request_dict(r, show_subject=True) for r in found]
    audit.record(session, caller=staff.caller, action="access.listed",
                 details={"count": len(shown), "via": "console"})
    return pages.render(
        TEMPLATES, request, "access.html", staff=staff,
        pending=[r for r in shown if r["status"] == "pending"],
        active=[r for r in shown if r["status"] == "approved"],
        decided=[r for r in shown if r["status"] in ("denied", "expired")][:50])


def _decide(staff: Staff, form: dict[str, str], session: SessionDep, request_id: str,
            approve: bool) -> Response:
    reason = form.get("reason", "").strip()[:2000] or None
    service.decide(session, caller=staff.caller, request_id=request_id, approve=approve,
                   reason=reason)
    return RedirectResponse("/console/access", status_code=303)


@router.post("/{request_id}/approve")
def approve(request_id: RequestId, staff: Approver, form: Form,
            session: SessionDep) -> Response:
    return _decide(staff, form, session, request_id, True)


@router.post("/{request_id}/deny")
def deny(request_id: RequestId, staff: Approver, form: Form, session: SessionDep) -> Response:
    return _decide(staff, form, session, request_id, False)
