"""The jobs that carry out data-subject requests, and the periodic deadline check."""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select

from app import idempotency
from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import utcnow
from app.dsr import changes, deadlines, erasure, events, export, service
from app.dsr.models import DsrExport, DsrRequest, DsrStatus
from app.jobs.queue import Claimed
from app.records import service as records
from app.runtime import Runtime
from app.webhooks.events import Event

CALLER = Caller.system("dsr")
logger = logging.getLogger("pgw.dsr")


def run_failed(session: Any, claimed: Claimed, error: str) -> None:
    dsr = session.get(DsrRequest, claimed.payload["dsr_id"])
    if dsr is not None and dsr.status not in (DsrStatus.COMPLETED, DsrStatus.REJECTED):
        dsr.status = DsrStatus.FAILED
        service.add_event(session, dsr, "failed", actor=claimed.worker or "system:jobs",
                          details={"error": error[:200]})
        events.publish(session, dsr, Event.DSR_FAILED)
        audit.record(session, caller=CALLER, action="dsr.failed", outcome=audit.Outcome.ERROR,
                     subject_id=dsr.subject_id, resource=f"dsr:{dsr.id}",
                     details={"type": dsr.type})


def run_request(runtime: Runtime, claimed: Claimed) -> None:
    keyring = runtime.require_keyring()
    dsr_id = claimed.payload["dsr_id"]
    with runtime.transaction() as session:
        dsr_type = service.get(session, dsr_id).type
    if dsr_type == "erasure":
        erasure.run(runtime.transaction, runtime.policy, keyring, runtime.receipt_signer, dsr_id)
        return
    with runtime.transaction() as session:
        dsr = service.get(session, dsr_id, lock=True)
        if dsr.status in (DsrStatus.COMPLETED, DsrStatus.REJECTED):
            return  # done by an earlier attempt that died before the job was marked done
        if dsr.type in ("access", "portability"):
            result = export.store(session, runtime.policy, keyring, dsr, ttl=timedelta(
                hours=runtime.settings.export_ttl_hours))
            action = "dsr.export.ready"
        elif dsr.type == "rectification":
            keys = records.Keys.of(runtime, keyring)
            result = changes.rectify(session, runtime.policy, keys, dsr)
            action = "dsr.rectification.completed"
        elif dsr.type == "restriction":
            result = changes.restrict(session, dsr)
            action = "dsr.restriction.completed"
        else:
            result = changes.object_to_processing(session, runtime.policy, dsr)
            action = "dsr.objection.completed"
        dsr.result = result
        dsr.status, dsr.closed_at, dsr.step = DsrStatus.COMPLETED, utcnow(), "completed"
        service.add_event(session, dsr, "completed", actor=claimed.worker)
        events.publish(session, dsr, Event.DSR_COMPLETED)
        audit.record(session, caller=CALLER, action=action, subject_id=dsr.subject_id,
                     resource=f"dsr:{dsr.id}", details=result)


def check_deadlines(runtime: Runtime, claimed: Claimed) -> None:
    """Resume requests whose hold ended on its own, and log what is overdue or nearly due."""
    with runtime.transaction() as session:
        resumed = service.resume_released(session, caller=CALLER)
        announced = events.announce_overdue(session, actor=CALLER.sub)
        found = deadlines.needing_attention(
            session, soon=timedelta(days=runtime.settings.dsr_due_soon_days))
        counts = {"overdue": len(found["overdue"]), "due_soon": len(found["at_risk"])}
        if found["overdue"] or found["at_risk"]:
            logger.warning("data-subject requests overdue or at risk", extra={
                **counts, "due_soon_days": runtime.settings.dsr_due_soon_days})
        if resumed or found["overdue"] or found["at_risk"]:
            audit.record(session, caller=CALLER, action="dsr.deadlines_checked",
                         details={**counts, "resumed": len(resumed),
                                  "newly_overdue": announced[:100],
                                  "at_risk": found["at_risk"][:100]})


def expire_exports(runtime: Runtime, claimed: Claimed) -> None:
    """Delete expired exports, and expired idempotency entries (the copies of responses kept
    for retries) with them."""
    with runtime.transaction() as session:
        gone = list(session.scalars(select(DsrExport.dsr_id).where(
            DsrExport.expires_at <= utcnow())))
        if gone:
            session.execute(delete(DsrExport).where(DsrExport.dsr_id.in_(gone)))
            audit.record(session, caller=CALLER, action="dsr.exports_expired",
                         details={"requests": gone[:100], "count": len(gone)})
    with runtime.transaction() as session:
        expired = idempotency.purge_expired(session)
        if expired:
            audit.record(session, caller=CALLER, action="idempotency.expired",
                         details={"count": expired})
