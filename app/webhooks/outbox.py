"""The outbox: an event becomes one delivery job per subscriber, in the transaction of the
change it reports, so a crash can neither lose it nor send it for a change that rolled back.
Delivery is at least once; the event id lets a receiver drop duplicates."""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import isoformat, utcnow
from app.jobs import queue
from app.keys.keyring import Keyring
from app.webhooks import events
from app.webhooks.events import Event
from app.webhooks.models import Webhook

EVENTS = tuple(event.value for event in Event)
SIGNING_KEY = "webhook-signing"
DELIVER = "webhook.deliver"
MAX_ATTEMPTS = 12  # with back-off capped at an hour: about six hours of trying


def secret(session: Session, keyring: Keyring, webhook_id: str) -> str:
    """The webhook's signing secret, derived, never stored."""
    key = keyring.service_key(session, SIGNING_KEY)
    return hmac.new(key, webhook_id.encode(), hashlib.sha256).hexdigest()


def signature(secret_hex: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret_hex.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"t={timestamp},v1={mac.hexdigest()}"


def publish(session: Session, event_type: Event, data: dict[str, Any]) -> str:
    """Queue the event for every subscriber that chose it; returns its id. `data` holds the
    keys `events.DATA` documents: ids, types and field names, never personal data."""
    event_type = Event(event_type)
    events.check_data(event_type, data)
    event_id = f"evt_{secrets.token_hex(12)}"
    event = {"id": event_id, "type": event_type.value, "version": events.VERSION,
             "occurred_at": isoformat(utcnow()), "data": data}
    for webhook in session.scalars(select(Webhook).where(Webhook.disabled_at.is_(None))):
        if events.matches(webhook.events, event_type):
            queue.enqueue(session, DELIVER, {"webhook_id": webhook.id, "event": event},
                          ref=f"webhook:{webhook.id}", max_attempts=MAX_ATTEMPTS)
    return event_id


@dataclass(frozen=True)
class Delivery:
    """One request, ready to send once the transaction that read it is over."""

    url: str
    body: bytes
    headers: dict[str, str]


def prepare(session: Session, keyring: Keyring, payload: dict[str, Any]) -> Delivery | None:
    """The signed request for one event; None if its webhook was removed."""
    webhook = session.get(Webhook, payload["webhook_id"])
    if webhook is None or webhook.disabled_at is not None:
        return None
    body = json.dumps(payload["event"], separators=(",", ":"), ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json", "User-Agent": "privacy-gateway-webhooks",
        "PGW-Event-Id": payload["event"]["id"], "PGW-Event-Type": payload["event"]["type"],
        "PGW-Signature": signature(secret(session, keyring, webhook.id), int(time.time()),
                                   body)}
    return Delivery(url=webhook.url, body=body, headers=headers)


def gave_up(session: Session, claimed: queue.Claimed, error: str) -> None:
    audit.record(session, caller=Caller.system("webhooks"), action="webhook.delivery_failed",
                 outcome=audit.Outcome.ERROR, resource=f"webhook:{claimed.payload['webhook_id']}",
                 details={"event_id": claimed.payload["event"]["id"],
                          "event_type": claimed.payload["event"]["type"],
                          "attempts": claimed.attempt, "error": error[:200]})
