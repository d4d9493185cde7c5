"""Registering and removing webhook subscribers."""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import utcnow
from app.errors import Invalid, NotFound
from app.webhooks.models import Webhook
from app.webhooks.outbox import EVENTS


def register(session: Session, *, caller: Caller, url: str, events: list[str],
             require_https: bool) -> Webhook:
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise Invalid("url must be an absolute http(s) URL", field="url")
    if require_https and parts.scheme != "https":
        raise Invalid("url must use https in production", field="url")
    if parts.username or parts.password:
        raise Invalid("url must not carry credentials; verify the signature instead",
                      field="url")
    unknown = sorted(set(events) - set(EVENTS))
    if unknown:
        raise Invalid(f"unknown event {unknown[0]!r}; known: {', '.join(EVENTS)}",
                      field="events")
    webhook = Webhook(id=f"whk_{secrets.token_hex(12)}", url=url, events=sorted(set(events)),
                      created_by=caller.sub, created_at=utcnow())
    session.add(webhook)
    session.flush()
    audit.record(session, caller=caller, action="webhook.registered",
                 resource=f"webhook:{webhook.id}",
                 details={"host": parts.hostname, "events": webhook.events})
    return webhook


def listing(session: Session) -> list[Webhook]:
    return list(session.scalars(select(Webhook).where(Webhook.disabled_at.is_(None))
                                .order_by(Webhook.created_at)))


def disable(session: Session, *, caller: Caller, webhook_id: str) -> None:
    webhook = session.get(Webhook, webhook_id)
    if webhook is None or webhook.disabled_at is not None:
        raise NotFound("no such webhook")
    webhook.disabled_at = utcnow()
    audit.record(session, caller=caller, action="webhook.disabled",
                 resource=f"webhook:{webhook.id}")


def webhook_dict(webhook: Webhook) -> dict[str, object]:
    return {"id": webhook.id, "url": webhook.url, "events": webhook.events,
            "created_at": webhook.created_at.isoformat()}
