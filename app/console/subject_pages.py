"""A subject's page (their consents, requests, and records as this officer may see them, masked
by the same rules as the API) and consent over time for every purpose."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import HTMLResponse

from app.audit import service as audit
from app.auth.scopes import Scope
from app.clock import utcnow
from app.consent import service as consent
from app.console import charts
from app.console.guard import TEMPLATES, ConsoleRoute, Needs
from app.console.sessions import Staff
from app.deps import KeyringDep, PolicyDep, SessionDep
from app.dsr import service as dsr
from app.errors import GatewayError
from app.records import reading
from app.web import pages

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
SubjectReader = Annotated[Staff, Depends(Needs(Scope.CONSENT_READ, Scope.DSR_MANAGE,
                                               Scope.RECORDS_READ))]
ConsentReader = Annotated[Staff, Depends(Needs(Scope.CONSENT_READ))]
CHART_DAYS = 30


def _records(session: SessionDep, policy: PolicyDep, keyring: KeyringDep, staff: Staff,
             subject_id: str, purpose: str) -> tuple[list[dict[str, Any]], str | None]:
    """The records this person may see for `purpose`, or why none (the refusal is audited by
    the records domain, as through the API)."""
    try:
        views, _ = reading.read_subject(session, policy, keyring, caller=staff.caller,
                                        subject_id=subject_id, purpose=purpose, limit=50,
                                        after=None)
    except GatewayError as exc:
        return [], str(exc)
    return [v.as_dict() for v in views], None


@router.get("/subjects", response_class=HTMLResponse)
def subject(request: Request, staff: SubjectReader, session: SessionDep, policy: PolicyDep,
            keyring: KeyringDep,
            subject_id: Annotated[str | None, Query(max_length=255)] = None,
            purpose: Annotated[str | None, Query(max_length=64)] = None) -> Response:
    context: dict[str, Any] = {"subject_id": subject_id, "purpose": purpose,
                               "purposes": sorted(policy.body.purposes)}
    caller = staff.caller
    if subject_id and caller.has(Scope.CONSENT_READ):
        events = [consent.event_dict(e) for e in consent.history(session, subject_id)]
        latest = {e["purpose"]: e for e in events}
        context["consents"] = {"current": latest, "history": events}
        audit.record(session, caller=caller, action="consent.read", subject_id=subject_id,
                     details={"events": len(events), "via": "console"})
    if subject_id and caller.has(Scope.DSR_MANAGE):
        found = dsr.listing(session, status=None, type=None, overdue=None,
                            subject_id=subject_id, limit=100)
        context["requests"] = [dsr.dsr_dict(d) for d in found]
        audit.record(session, caller=caller, action="dsr.listed", subject_id=subject_id,
                     details={"count": len(found), "status": None, "type": None,
                              "overdue": None, "via": "console"})
    if subject_id and purpose in policy.body.purposes and caller.has(Scope.RECORDS_READ):
        context["records"], context["records_refused"] = _records(
            session, policy, keyring, staff, subject_id, purpose)
    return pages.render(TEMPLATES, request, "subject.html", staff=staff, **context)


@router.get("/consents", response_class=HTMLResponse)
def consent_overview(request: Request, staff: ConsentReader, session: SessionDep) -> Response:
    today = utcnow().date()
    since = utcnow() - timedelta(days=CHART_DAYS)
    rows = consent.daily_counts(session, since=since.replace(hour=0, minute=0, second=0,
                                                            microsecond=0))
    drawn = [(s, charts.bars(s, last_day=today, days=CHART_DAYS)) for s in charts.series(rows)]
    notices = [consent.notice_dict(n) for n in consent.notices(session)]
    return pages.render(TEMPLATES, request, "consents.html", staff=staff, charts=drawn,
                        notices=notices, width=charts.WIDTH, height=charts.HEIGHT,
                        days=CHART_DAYS, first_day=(today - timedelta(days=CHART_DAYS - 1)),
                        last_day=today)
