"""Delivering webhook events from the outbox: read and sign in one short transaction, send with
none open, and let the worker record the outcome in another (the job's completion or retry)."""

from __future__ import annotations

from app.jobs.faults import crash_point
from app.jobs.queue import Claimed
from app.runtime import Runtime
from app.webhooks import delivery, outbox, targets


def deliver(runtime: Runtime, claimed: Claimed) -> None:
    keyring = runtime.require_keyring()
    with runtime.transaction() as session:
        request = outbox.prepare(session, keyring, claimed.payload)
    if request is None:
        return
    settings = runtime.settings
    delivery.post(request.url, body=request.body, headers=request.headers,
                  allow=targets.allow_list(settings.webhook_allow_hosts),
                  require_https=not settings.is_dev, timeout=settings.webhook_timeout_seconds)
    crash_point("webhook.sent")
