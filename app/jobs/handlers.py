"""Every domain's job handlers, registered by `app.wiring.wire` so that a worker knows them all."""

from app.dsr import jobs as dsr
from app.jobs.queue import Registry
from app.keys import jobs as keys
from app.keys import rotation
from app.retention import jobs as retention
from app.webhooks import jobs as webhooks
from app.webhooks import outbox


def register(registry: Registry) -> None:
    registry.add("dsr.run", dsr.run_request, on_failure=dsr.run_failed)
    registry.add("dsr_deadlines", dsr.check_deadlines)
    registry.add("export_expiry", dsr.expire_exports)
    registry.add("key_destruction", keys.destroy_due_keys)
    registry.add(rotation.KEK_ROTATION_JOB, keys.rotate_kek)
    registry.add(rotation.DEK_ROTATION_JOB, keys.rotate_all_deks)
    registry.add("retention_sweep", retention.retention_sweep)
    # a receiver that answers slowly must never hold up the rest of the queue
    registry.add(outbox.DELIVER, webhooks.deliver, on_failure=outbox.gave_up, lane="webhooks")
