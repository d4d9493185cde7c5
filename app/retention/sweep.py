"""The retention sweep. `plan` says what a run would do; `run` does it.

- A record past `retention_until` is deleted, or de-identified: fields that identify or
  contact the person, free text and protected values are dropped, dates generalised to the
  year, blind indexes deleted, and the subject id replaced by a random one, so what remains no
  longer links to the person.
- A field past its own deadline is removed from the record.
- Withdrawing consent starts the countdown of records collected on that consent: the sweep
  sets their deadline from the withdrawal's time (or keeps an earlier one).
- A legal hold on the subject or the record type keeps the record as it is.

Why in batches: one transaction for a whole sweep held SQLite's write lock, or PostgreSQL's
row locks, for its whole length. Each batch is its own short transaction: its records (locked),
its changes and its `retention.batch` audit entry land together or not at all, and other
writers get in between batches. A run that stops between batches leaves the batches before it
committed and audited, and the next run completes the rest exactly once: what a batch did takes
its records out of the queries (deleted, de-identified, the field gone, the deadline set). The
run ends with one `retention.run` entry whose counts are the sum of its batch entries (the same
`resource`); a run with batch entries and no `retention.run` entry stopped midway.
"""

from __future__ import annotations

import secrets
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import utcnow
from app.consent import service as consent
from app.dsr import holds
from app.policy.loader import Policy
from app.policy.models import DataField, FieldType, LegalBasis, RecordType, RetentionTrigger
from app.records import service as record_service
from app.records.service import Record, Selection, drop_fields
from app.retention import rules
from app.runtime import Transaction
from app.webhooks import outbox
from app.webhooks.events import Event

BATCH = 500
# After a full batch: SQLite's busy handler retries a waiting writer at most every 100 ms, so
# a sweep that began its next batch at once could keep the write lock from it for good.
PAUSE_SECONDS = 0.1
CALLER = Caller.system("retention")
IDENTIFYING_TYPES = (FieldType.NAME, FieldType.EMAIL, FieldType.PHONE, FieldType.CN_RESIDENT_ID,
                     FieldType.ADDRESS, FieldType.FREE_TEXT)
IDENTIFYING_CATEGORIES = ("identity", "contact", "communications")


@dataclass
class Report:
    counts: dict[str, Counter[str]] = field(default_factory=dict)  # record type -> action -> n

    def add(self, record_type: str, action: str, n: int = 1) -> None:
        self.counts.setdefault(record_type, Counter())[action] += n

    def merge(self, other: Report) -> None:
        for record_type, actions in other.counts.items():
            self.counts.setdefault(record_type, Counter()).update(actions)

    def as_dict(self) -> dict[str, dict[str, int]]:
        return {name: dict(sorted(c.items())) for name, c in sorted(self.counts.items())}

    def total(self, action: str) -> int:
        return sum(c[action] for c in self.counts.values())


@dataclass(frozen=True)
class Batch:
    """A batch of a run, committed with its audit entry: what `on_batch` is told."""

    run_id: str
    number: int  # 1, 2, ... in the order of the run's `retention.batch` entries
    phase: str
    report: Report


OnBatch = Callable[[Batch], None]


def field_rule(spec: DataField) -> str:
    if spec.deidentify:
        return spec.deidentify
    if spec.protection != "clear" or spec.scan_pii or spec.type in IDENTIFYING_TYPES or \
            spec.category in IDENTIFYING_CATEGORIES:
        return "drop"
    return "generalize" if spec.type is FieldType.DATE else "keep"


def _generalised(spec: DataField, value: Any) -> Any:
    text = str(value)
    if spec.type is FieldType.DATE:
        return text[:4]
    return text[:3] + "*" * max(0, len(text) - 3)


def deidentify(session: Session, spec: RecordType | None, record: Record, now: datetime) -> None:
    data = {}
    for name, value in record.data.items():
        field_spec = spec.fields.get(name) if spec else None
        rule = field_rule(field_spec) if field_spec else "drop"
        if rule == "keep":
            data[name] = value
        elif rule == "generalize" and field_spec is not None:
            data[name] = _generalised(field_spec, value)
    record_service.strip_to(session, record, data)
    record.field_retention = {}
    record.subject_id = f"deidentified:{secrets.token_hex(12)}"
    record.retention_until, record.deidentified_at = None, now


def _consent_query(policy: Policy, now: datetime) -> Selection:
    return Selection(purposes=[name for name, purpose in policy.body.purposes.items()
                               if purpose.legal_basis is LegalBasis.CONSENT])


def _start_countdowns(session: Session, policy: Policy, now: datetime, records: list[Record],
                      report: Report, apply: bool) -> None:
    """Records collected on consent are due after the consent is withdrawn: their type's
    period if the type is kept "until consent is withdrawn", else the purpose's
    `after_withdrawal_days`; or at their own deadline if that comes first."""
    for record in records:
        spec = policy.body.record_types.get(record.record_type)
        latest = consent.current(session, record.subject_id, record.purpose)
        if spec is None or latest is None or latest.event != "withdrawn":
            continue
        days = spec.retention.days if \
            spec.retention.trigger is RetentionTrigger.CONSENT_WITHDRAWAL else \
            policy.body.purposes[record.purpose].after_withdrawal_days
        due = latest.recorded_at + timedelta(days=days)
        if record.retention_until is None or due < record.retention_until:
            if apply:
                record.retention_until = due
            report.add(record.record_type, "countdown_started")


def _holding(session: Session, now: datetime) -> Callable[[Record], bool]:
    """Whether a legal hold keeps a record, as the holds stand in this batch's transaction."""
    subjects, types = holds.held_subjects(session, now), holds.held_types(session, now)
    return lambda record: record.subject_id in subjects or record.record_type in types


def _due_query(policy: Policy, now: datetime) -> Selection:
    return Selection(due_by=now)


def _expire_records(session: Session, policy: Policy, now: datetime, records: list[Record],
                    report: Report, apply: bool) -> None:
    held = _holding(session, now)
    deleted: list[dict[str, str]] = []
    deidentified: list[dict[str, str]] = []
    for record in records:
        spec = policy.body.record_types.get(record.record_type)
        if held(record):
            report.add(record.record_type, "held")
            continue
        # kept only because a law said so after the subject was erased: now it goes
        action = str(spec.retention.action) if spec and record.erased_at is None else "delete"
        if apply:
            item = {"record_id": record.id, "record_type": record.record_type,
                    "purpose": record.purpose}
            if action == "delete":
                deleted.append(item | {"subject_id": record.subject_id})
                record_service.delete_record(session, record)
            else:
                deidentified.append(item)  # without the subject: that link is what goes
                deidentify(session, spec, record, now)
        report.add(record.record_type, action)
    # one event per batch and kind, in the batch's transaction: a sweep of many records
    # queues one delivery per batch and subscriber, not one per record
    for event, items in ((Event.RECORD_DELETED, deleted),
                         (Event.RECORD_DEIDENTIFIED, deidentified)):
        if items:
            outbox.publish(session, event, {"reason": "retention", "records": items})


def _fields_query(policy: Policy, now: datetime) -> Selection:
    return Selection()


def _expire_fields(session: Session, policy: Policy, now: datetime, records: list[Record],
                   report: Report, apply: bool) -> None:
    held = _holding(session, now)
    for record in records:
        expired = rules.expired_fields(record.field_retention, now)
        if not expired:
            continue
        if held(record):
            report.add(record.record_type, "fields_held", len(expired))
            continue
        if apply:
            drop_fields(session, record, expired)
        report.add(record.record_type, "fields_removed", len(expired))


Query = Callable[[Policy, datetime], Selection]
Step = Callable[[Session, Policy, datetime, list[Record], Report, bool], None]
PHASES: tuple[tuple[str, Query, Step], ...] = (
    ("countdowns", _consent_query, _start_countdowns),  # first: what they make due goes now
    ("records", _due_query, _expire_records),
    ("fields", _fields_query, _expire_fields),
)


@dataclass(frozen=True)
class _Sweep:
    """What every batch of one run or plan needs."""

    transaction: Transaction
    policy: Policy
    now: datetime
    apply: bool
    batch_size: int
    caller: Caller
    run_id: str
    on_batch: OnBatch | None


def _batch(sweep: _Sweep, phase: str, query: Query, step: Step, *, after: str,
           number: int) -> tuple[int, str, Report]:
    """One batch in one transaction: how many records it took (none: the phase is done), the
    last one's id, and its counts."""
    with sweep.transaction() as session:
        # applying, a concurrent writer, or sweep, waits; a row gone by then drops out
        records = record_service.batch(session, query(sweep.policy, sweep.now), after=after,
                                       limit=sweep.batch_size, lock=sweep.apply)
        last = records[-1].id if records else after
        report = Report()
        step(session, sweep.policy, sweep.now, records, report, sweep.apply)
        if not sweep.apply:
            session.rollback()
        elif report.counts:
            audit.record(session, caller=sweep.caller, action="retention.batch",
                         resource=f"retention_run:{sweep.run_id}",
                         details={"at": sweep.now.isoformat(), "batch": number,
                                  "phase": phase, "counts": report.as_dict()})
    return len(records), last, report


def _phase(sweep: _Sweep, phase: str, query: Query, step: Step, total: Report,
           batches: int) -> int:
    """Every batch of one phase, added to `total`; returns how many batches the run has had.
    It ends on an empty batch, not a short one: rows a concurrent sweep took drop out of a
    locked batch on PostgreSQL and make it short."""
    after = ""
    while True:
        taken, after, report = _batch(sweep, phase, query, step, after=after,
                                      number=batches + 1)
        if report.counts:
            batches += 1
            total.merge(report)
            if sweep.on_batch is not None:
                sweep.on_batch(Batch(sweep.run_id, batches, phase, report))
        if not taken:
            return batches
        if taken == sweep.batch_size:
            time.sleep(PAUSE_SECONDS)


def _sweep(sweep: _Sweep) -> tuple[Report, int]:
    total, batches = Report(), 0
    for phase, query, step in PHASES:
        batches = _phase(sweep, phase, query, step, total, batches)
    return total, batches


def plan(transaction: Transaction, policy: Policy, *, now: datetime | None = None,
         batch_size: int = BATCH) -> Report:
    """What the next run would do, changing nothing."""
    report, _ = _sweep(_Sweep(transaction, policy, now or utcnow(), apply=False,
                              batch_size=batch_size, caller=CALLER, run_id="plan",
                              on_batch=None))
    return report


def run(transaction: Transaction, policy: Policy, *, caller: Caller = CALLER,
        now: datetime | None = None, batch_size: int = BATCH, run_id: str | None = None,
        on_batch: OnBatch | None = None) -> Report:
    """Apply retention in batches that each commit with their audit entry, then audit the
    run's totals; `on_batch` is called after each batch that did or counted something."""
    now = now or utcnow()
    run_id = run_id or secrets.token_hex(8)
    report, batches = _sweep(_Sweep(transaction, policy, now, apply=True, batch_size=batch_size,
                                    caller=caller, run_id=run_id, on_batch=on_batch))
    with transaction() as session:
        audit.record(session, caller=caller, action="retention.run",
                     resource=f"retention_run:{run_id}",
                     details={"at": now.isoformat(), "batches": batches,
                              "counts": report.as_dict()})
    return report
