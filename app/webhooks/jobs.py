"""Delivering webhook events from the outbox."""

from __future__ import annotations

from app.jobs import queue
from app.jobs.queue import Claimed
from app.runtime import Runtime
from app.webhooks import outbox


@queue.handler(outbox.DELIVER, on_failure=outbox.gave_up)
def deliver(runtime: Runtime, claimed: Claimed) -> None:
    keyring = runtime.require_keyring()
    with runtime.transaction() as session:
        outbox.deliver(session, keyring, claimed.payload,
                       timeout=runtime.settings.webhook_timeout_seconds)
