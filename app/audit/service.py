"""Writing and reading the audit log.

Services call `record()`, which only queues a draft on the session. The drafts are written to
the log's queue in the session's `before_commit` hook, inside the same transaction as the change
they describe: the entry and the change commit together or not at all. Writers share no lock:
the sequencer (`tree.integrate`, one at a time on a lock of its own) numbers committed entries,
links them onto the hash chain and adds them to the Merkle tree, within a second. Readers of the
log first integrate what is committed (`catch_up`), so they never miss an entry.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, fields
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from sqlalchemy import event, func, insert, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.audit import intake, tree, verifier
from app.audit.models import AuditCheckpoint, AuditEntry, AuditPending
from app.auth.guard import Caller
from app.clock import isoformat, utcnow
from app.db import OUTSIDE_TRANSACTION, is_postgres
from app.errors import AuditWriteFailed, database_error
from app.keys.signing import Signer

PENDING_KEY = "pgw.audit.pending"
WRITER_KEY = "audit_writer"
MAX_DETAIL_STRING = 200
BATCH = 2000
# built once; executed on the connection, as Core; inline: nothing reads back the new row's id,
# so no RETURNING
_QUEUE = insert(AuditPending).inline()
_QUEUE_ALONE = _QUEUE.execution_options(**OUTSIDE_TRANSACTION)  # the only write (db.begin_lazily)
logger = logging.getLogger("pgw.audit")


class Outcome(StrEnum):
    ALLOWED = "allowed"
    DENIED = "denied"
    ERROR = "error"


@dataclass(frozen=True)
class Draft:
    actor: str
    roles: tuple[str, ...]
    action: str
    outcome: Outcome
    purpose: str | None
    subject_id: str | None
    resource: str | None
    details: dict[str, Any]
    request_id: str | None


_DRAFT_FIELDS = tuple(f.name for f in fields(Draft))


@dataclass
class AuditWriter:
    """Per-process settings of the appender, carried on every session in `session.info`."""

    policy_version: str | None
    signer: Signer | None
    checkpoint_every: int
    on_failure: Callable[[], None] = field(default=lambda: None)
    origin: str = "privacy-gateway"  # the log's name in its signed checkpoints
    checkpoint_interval: timedelta = timedelta(seconds=60)
    # Sessions in which this process may sequence (integrate, sign). None when a separate
    # sequencer role does it: readers then wait for it instead.
    sequencer_sessions: Callable[[], Session] | None = None


def record(session: Session, *, caller: Caller, action: str, outcome: Outcome = Outcome.ALLOWED,
           purpose: str | None = None, subject_id: str | None = None,
           resource: str | None = None, details: dict[str, Any] | None = None) -> None:
    """Queue an audit entry; it is written when the session commits, or never."""
    details = details or {}
    _check_details(details)
    draft = Draft(
        actor=caller.sub, roles=caller.roles, action=action, outcome=outcome, purpose=purpose,
        subject_id=subject_id, resource=resource, details=details, request_id=caller.request_id,
    )
    # what the chain cannot hash (a lone surrogate, say) or the queue would refuse (too large)
    # fails its own request, not the sequencer; the draft's fields as they are: `asdict` would
    # deep-copy the details first
    hashed = verifier.canonical({**{name: getattr(draft, name) for name in _DRAFT_FIELDS},
                                 "roles": list(draft.roles)})
    if len(hashed) > intake.WRITER_MAX_BYTES:
        raise ValueError(f"audit entry larger than {intake.WRITER_MAX_BYTES} bytes; details "
                         "carry names, counts and reasons")
    session.info.setdefault(PENDING_KEY, []).append(draft)


def take_unsuccessful(session: Session) -> list[Draft]:
    """Remove and return queued denials and errors, which must outlive a rolled-back request."""
    drafts: list[Draft] = session.info.pop(PENDING_KEY, [])
    return [draft for draft in drafts if draft.outcome is not Outcome.ALLOWED]


def requeue(session: Session, drafts: list[Draft]) -> None:
    session.info.setdefault(PENDING_KEY, []).extend(drafts)


def names(values: Iterable[str], *, limit: int = 50) -> list[str]:
    """Names a caller chose (fields it sent, keys it asked for), as details may hold them: the
    first `limit` in sorted order, each cut to 100 characters, and "+N" for the rest. Details
    stay small whatever a request holds (an entry over `intake.WRITER_MAX_BYTES` is refused)."""
    ordered = sorted(values)
    kept = [name[:100] for name in ordered[:limit]]
    return kept + [f"+{len(ordered) - limit}"] if len(ordered) > limit else kept


def _check_details(value: Any, depth: int = 0) -> None:
    """Details carry names, counts and reasons. Long strings are refused: they smell of values."""
    if depth > 4:
        raise ValueError("audit details are nested too deeply")
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError("audit detail keys must be strings")
            _check_details(item, depth + 1)
    elif isinstance(value, list | tuple):
        for item in value:
            _check_details(item, depth + 1)
    elif isinstance(value, str):
        if len(value) > MAX_DETAIL_STRING:
            raise ValueError("audit detail strings are limited; never put free text or values "
                             "in an audit entry")
    elif value is not None and not isinstance(value, bool | int | float):
        raise TypeError(f"audit details cannot hold {type(value).__name__}")


def hooked(factory: sessionmaker[Session]) -> sessionmaker[Session]:
    """The factory, its sessions now writing their queued audit entries when they commit (and
    dropping them on rollback). Only the service's factories are hooked, not every Session."""
    event.listen(factory, "before_commit", _append_on_commit)
    event.listen(factory, "after_rollback", _discard_on_rollback)
    return factory


def _append_on_commit(session: Session) -> None:
    drafts: list[Draft] = session.info.pop(PENDING_KEY, [])
    if not drafts:
        return
    writer: AuditWriter | None = session.info.get(WRITER_KEY)
    if writer is None:
        raise AuditWriteFailed("no audit writer is configured for this session")
    try:
        append(session, drafts=drafts, writer=writer)
    except Exception as exc:
        writer.on_failure()
        # An outage or a full disk is the database's, and says so with a 503 to retry.
        raise database_error(exc) or AuditWriteFailed(
            "the audit entry could not be written, so nothing was changed"
        ) from exc


def _discard_on_rollback(session: Session) -> None:
    session.info.pop(PENDING_KEY, None)


def append(session: Session, *, drafts: list[Draft], writer: AuditWriter) -> None:
    """Queue drafts in the caller's transaction: one insert, no lock, nothing read. The
    sequencer gives them sequence numbers, links them onto the chain and into the Merkle tree
    after they commit (`tree.integrate`)."""
    now = utcnow()
    # a Core INSERT on the session's connection, not ORM objects and a flush nor the ORM's bulk
    # path: nothing reads the rows back. In a session that reads without a transaction
    # (db.begin_lazily), one entry and nothing else to write (the commit flushes no change
    # after this) commits as the statement runs.
    alone = len(drafts) == 1 and not (session.new or session.deleted or
                                      session.identity_map.check_modified())
    session.connection().execute(_QUEUE_ALONE if alone else _QUEUE, [{
        "ts": now, "actor": draft.actor, "roles": list(draft.roles), "action": draft.action,
        "purpose": draft.purpose, "subject_id": draft.subject_id,
        "resource": draft.resource, "outcome": draft.outcome.value, "details": draft.details,
        "request_id": draft.request_id, "policy_version": writer.policy_version,
    } for draft in drafts])


def integrate(session: Session, *, wait: bool = False, force_checkpoint: bool = False,
              limit: int = tree.BATCH) -> tree.Integration | None:
    """One sequencer step in the session's transaction (see `tree.integrate`)."""
    writer: AuditWriter | None = session.info.get(WRITER_KEY)
    if writer is None:
        raise AuditWriteFailed("no audit writer is configured for this session")
    return tree.integrate(session, signer=writer.signer, origin=writer.origin,
                          checkpoint_every=writer.checkpoint_every,
                          checkpoint_interval=timedelta(0) if force_checkpoint
                          else writer.checkpoint_interval, wait=wait, limit=limit)


def catch_up(session: Session, *, timeout: float = 2.0) -> None:
    """Before a reader looks at the log: make sure what committed before it is in the log.

    A process that may sequence integrates it itself, in a short transaction of its own (on
    SQLite in the reader's, which holds the write lock anyway), so no reader holds the
    sequencer's lock for its whole request. Otherwise it waits, at most `timeout` seconds, for
    the sequencer. A log the sequencer cannot extend is logged; readers still see what is
    there, and verify says what is wrong.
    """
    writer: AuditWriter = session.info[WRITER_KEY]
    try:
        if not is_postgres(session) and session.in_transaction():
            with session.begin_nested():  # this transaction holds SQLite's write lock already
                _integrate_all(session)
        elif writer.sequencer_sessions is not None:
            with writer.sequencer_sessions() as own:
                _integrate_all(own)
                own.commit()
        else:
            _wait_for_sequencer(session, timeout)
    except (LookupError, SQLAlchemyError, ValueError) as exc:
        logger.error("the audit log could not be brought up to date: %s: %s",
                     type(exc).__name__, exc)


def _integrate_all(session: Session, *, rounds: int = 5) -> None:
    for _ in range(rounds):  # a larger backlog is left to the sequencer
        result = integrate(session, wait=True)
        if result is None or result.added < tree.BATCH:
            return


def _wait_for_sequencer(session: Session, timeout: float) -> None:
    mark = session.scalar(select(func.max(AuditPending.id)))
    deadline = time.monotonic() + timeout
    while mark is not None and time.monotonic() < deadline:
        if session.scalar(select(AuditPending.id).where(AuditPending.id <= mark).limit(1)) \
                is None:
            return
        time.sleep(0.05)


class CheckpointUnavailable(Exception):
    """This process may not sign (a separate sequencer does), or signed one a moment ago."""


def create_checkpoint(session: Session, *, at_most_every: float = 0.0) -> AuditCheckpoint | None:
    """Bring the log up to date and sign its tree now with the process's audit key; None while
    the log is empty. With `at_most_every`, a checkpoint younger than that many seconds is
    returned instead of signing another (readers cannot make it sign at will)."""
    writer: AuditWriter = session.info[WRITER_KEY]
    sequencer_sessions = writer.sequencer_sessions
    if sequencer_sessions is None:
        raise CheckpointUnavailable("checkpoints are signed by the sequencer")
    catch_up(session)
    recent = tree.latest_checkpoint(session)
    if recent is not None and at_most_every and \
            (utcnow() - recent.created_at).total_seconds() < at_most_every:
        raise CheckpointUnavailable("a checkpoint was signed moments ago")
    if is_postgres(session):
        with sequencer_sessions() as own:
            result = integrate(own, wait=True, force_checkpoint=True)
            own.commit()
    else:
        result = integrate(session, wait=True, force_checkpoint=True)
    if result is None or result.size == 0:
        return None
    return tree.checkpoint_at(session, result.size)


def entry_dict(entry: AuditEntry) -> dict[str, Any]:
    return {**tree.entry_fields(entry), "hash": entry.hash}


def checkpoint_dict(checkpoint: AuditCheckpoint) -> dict[str, Any]:
    body = {
        "size": checkpoint.size, "head": checkpoint.head,
        "created_at": isoformat(checkpoint.created_at), "key_id": checkpoint.key_id,
        "signature": checkpoint.signature,
    }
    if checkpoint.root is not None:
        body.update(root=checkpoint.root, note=checkpoint.note)
    return body


def list_entries(session: Session, *, since: datetime | None = None,
                 until: datetime | None = None, actor: str | None = None,
                 action: str | None = None, subject_id: str | None = None,
                 outcome: Outcome | None = None, after_seq: int = 0,
                 limit: int = 100) -> list[AuditEntry]:
    query = select(AuditEntry).where(AuditEntry.seq > after_seq)
    filters = {AuditEntry.actor: actor, AuditEntry.action: action,
               AuditEntry.subject_id: subject_id, AuditEntry.outcome: outcome}
    for column, value in filters.items():
        if value is not None:
            query = query.where(column == value)
    if since is not None:
        query = query.where(AuditEntry.ts >= since)
    if until is not None:
        query = query.where(AuditEntry.ts < until)
    return list(session.scalars(query.order_by(AuditEntry.seq).limit(limit)))


def list_checkpoints(session: Session, *, after_size: int = 0, up_to: int | None = None,
                     limit: int = 100) -> list[AuditCheckpoint]:
    query = select(AuditCheckpoint).where(AuditCheckpoint.size > after_size)
    if up_to is not None:
        query = query.where(AuditCheckpoint.size <= up_to)
    return list(session.scalars(query.order_by(AuditCheckpoint.size).limit(limit)))


def reads_of_subject(session: Session, *, subject_id: str,
                     actions: Iterable[str]) -> list[AuditEntry]:
    """Allowed reads of one subject's data, oldest first (for the subject's own copy)."""
    catch_up(session)
    return list(session.scalars(select(AuditEntry).where(
        AuditEntry.subject_id == subject_id, AuditEntry.action.in_(list(actions)),
        AuditEntry.outcome == Outcome.ALLOWED.value).order_by(AuditEntry.seq)))


def entries_after(session: Session, *, after_seq: int, up_to: int | None = None,
                  limit: int) -> list[AuditEntry]:
    """The next `limit` entries in sequence order after `after_seq`, up to `up_to`."""
    query = select(AuditEntry).where(AuditEntry.seq > after_seq)
    if up_to is not None:
        query = query.where(AuditEntry.seq <= up_to)
    return list(session.scalars(query.order_by(AuditEntry.seq).limit(limit)))


def iter_entries(session: Session, *, up_to: int | None = None) -> Iterator[dict[str, Any]]:
    """Every entry in sequence order, fetched in batches so memory stays flat."""
    last = 0
    while True:
        batch = entries_after(session, after_seq=last, up_to=up_to, limit=BATCH)
        if not batch:
            return
        last = batch[-1].seq
        for entry in batch:
            session.expunge(entry)
            yield entry_dict(entry)


def head(session: Session) -> tuple[int, str]:
    last = session.execute(
        select(AuditEntry.seq, AuditEntry.hash).order_by(AuditEntry.seq.desc()).limit(1)
    ).first()
    return (last.seq, last.hash) if last else (0, verifier.GENESIS_HASH)
