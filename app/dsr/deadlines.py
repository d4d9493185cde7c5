"""Legal deadlines of data-subject requests from the jurisdictions in policy, and which open
requests are past them or close to them."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.dsr.models import DsrRequest
from app.policy.models import Period


def add_period(start: datetime, period: Period) -> datetime:
    """`start` plus a period: calendar months (the same day, or the month's last day), days,
    or business days (Monday to Friday; public holidays are not modelled)."""
    moment = start
    if period.months:
        month = moment.month - 1 + period.months
        year, month = moment.year + month // 12, month % 12 + 1
        day = min(moment.day, calendar.monthrange(year, month)[1])
        moment = moment.replace(year=year, month=month, day=day)
    if period.days:
        if not period.business_days:
            return moment + timedelta(days=period.days)
        left = period.days
        while left:
            moment += timedelta(days=1)
            if moment.weekday() < 5:
                left -= 1
    return moment


def needing_attention(session: Session, *, soon: timedelta, now: datetime | None = None,
                      ) -> dict[str, list[str]]:
    """Ids of open requests past their deadline (`overdue`) and of those due within `soon`
    (`at_risk`), the most urgent first: what the periodic deadline check reports."""
    from app.dsr.service import OPEN  # service imports this module

    now = now or utcnow()
    rows = session.execute(select(DsrRequest.id, DsrRequest.due_at).where(
        DsrRequest.status.in_(OPEN), DsrRequest.due_at < now + soon)
        .order_by(DsrRequest.due_at, DsrRequest.id))
    found: dict[str, list[str]] = {"overdue": [], "at_risk": []}
    for dsr_id, due_at in rows:
        found["overdue" if due_at < now else "at_risk"].append(dsr_id)
    return found
