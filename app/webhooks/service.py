"""Registering and removing webhook subscribers."""

from __future__ import annotations

import secrets

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import utcnow
from app.db import Position, keyset
from app.errors import Invalid, NotFound
from app.webhooks import delivery, outbox, targets
from app.webhooks import events as webhook_events
from app.webhooks.models import Webhook
from app.webhooks.targets import AllowList


def register(session: Session, *, caller: Caller, url: str, events: list[str],
             allow: AllowList, require_https: bool) -> Webhook:
    try:
        target = targets.check_registration(url, allow=allow, require_https=require_https)
    except targets.Refused as exc:
        raise Invalid(str(exc), field="url") from None
    for index, name in enumerate(events):
        try:
            webhook_events.check(name)
        except ValueError as exc:
            raise Invalid(str(exc), field=f"events.{index}") from None
    webhook = Webhook(id=f"whk_{secrets.token_hex(12)}", url=url, events=sorted(set(events)),
                      created_by=caller.sub, created_at=utcnow())
    session.add(webhook)
    session.flush()
    audit.record(session, caller=caller, action="webhook.registered",
                 resource=f"webhook:{webhook.id}",
                 details={"host": target.host, "events": webhook.events})
    return webhook


def listing(session: Session, *, limit: int | None = None,
            after: Position | None = None) -> list[Webhook]:
    """Active subscribers, oldest first (then by id), past `after`."""
    query = keyset(select(Webhook).where(Webhook.disabled_at.is_(None)), sort=Webhook.created_at,
                   id=Webhook.id, after=after)
    return list(session.scalars(query.limit(limit)))


def disable(session: Session, *, caller: Caller, webhook_id: str) -> None:
    webhook = session.get(Webhook, webhook_id)
    if webhook is None or webhook.disabled_at is not None:
        raise NotFound("no such webhook")
    webhook.disabled_at = utcnow()
    audit.record(session, caller=caller, action="webhook.disabled",
                 resource=f"webhook:{webhook.id}")


def deliveries(session: Session, *, webhook_id: str, limit: int = 100) -> list[dict[str, object]]:
    """The webhook's deliveries, newest first: event, state, attempts and the last error."""
    from app.jobs import queue

    if session.get(Webhook, webhook_id) is None:
        raise NotFound("no such webhook")
    return [{"job_id": job.id, "event_id": job.payload["event"]["id"],
             "event_type": job.payload["event"]["type"], "state": job.state,
             "attempts": job.attempts, "created_at": job.created_at.isoformat(),
             "finished_at": job.finished_at.isoformat() if job.finished_at else None,
             "last_error": job.last_error}
            for job in queue.jobs_for(session, f"webhook:{webhook_id}", limit=limit)]


def webhook_dict(webhook: Webhook) -> dict[str, object]:
    return {"id": webhook.id, "url": webhook.url, "events": webhook.events,
            "created_at": webhook.created_at.isoformat()}


def post_signed(url: str, *, body: bytes, secret: str, allow_hosts: tuple[str, ...],
                require_https: bool, timeout: float) -> int:
    """One POST outside the event outbox (e.g. a one-time code for an SMS gateway), through the
    checks every delivery passes (allowed address, https outside dev, no redirect, one
    deadline) and signed as event deliveries are. Raises targets.Refused or
    delivery.DeliveryFailed."""
    headers = {"Content-Type": "application/json",
               "PGW-Signature": outbox.signature(secret, int(utcnow().timestamp()), body)}
    return delivery.post(url, body=body, headers=headers, allow=targets.allow_list(allow_hosts),
                         require_https=require_https, timeout=timeout)
