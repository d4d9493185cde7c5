"""The webhook events of data-subject requests, published in the transaction of the change.

A request is announced overdue once: the deadline check marks it with an `overdue` step in its
timeline, in the transaction that publishes the event, and passes over requests so marked.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.clock import isoformat, utcnow
from app.dsr.models import DsrEvent, DsrRequest
from app.webhooks import outbox
from app.webhooks.events import Event

OVERDUE = "overdue"


def publish(session: Session, dsr: DsrRequest, event: Event) -> None:
    """Tell subscribers about the request: ids, type and status, nothing the person wrote."""
    outbox.publish(session, event, {
        "dsr_id": dsr.id, "subject_id": dsr.subject_id, "type": dsr.type,
        "jurisdiction": dsr.jurisdiction, "status": dsr.status, "due_at": isoformat(dsr.due_at)})


def announce_overdue(session: Session, *, actor: str, now: datetime | None = None
                     ) -> list[str]:
    """Publish `dsr.overdue` for each open request past its deadline not announced before;
    returns their ids."""
    from app.dsr.service import OPEN  # service imports this module

    now = now or utcnow()
    late = list(session.scalars(select(DsrRequest).where(
        DsrRequest.status.in_(OPEN), DsrRequest.due_at < now)
        .order_by(DsrRequest.due_at, DsrRequest.id).with_for_update()))
    if not late:
        return []
    # read after the rows are locked (a new statement sees what a concurrent check committed)
    announced = set(session.scalars(select(DsrEvent.dsr_id).where(
        DsrEvent.dsr_id.in_([dsr.id for dsr in late]), DsrEvent.event == OVERDUE)))
    fresh = [dsr for dsr in late if dsr.id not in announced]
    for dsr in fresh:
        session.add(DsrEvent(dsr_id=dsr.id, at=now, event=OVERDUE, actor=actor,
                             details={"due_at": dsr.due_at.isoformat()}))
        publish(session, dsr, Event.DSR_OVERDUE)
    return [dsr.id for dsr in fresh]
