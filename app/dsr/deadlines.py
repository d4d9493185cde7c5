"""Legal deadlines of data-subject requests from the jurisdictions in policy."""

from __future__ import annotations

import calendar
from datetime import datetime, timedelta

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
