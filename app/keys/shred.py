"""Crypto-shredding: destroying a subject's data keys makes every copy of their protected data
undecryptable, wherever it was stored or sent (backups too, once the KEK versions that wrapped
the destroyed keys are retired and destroyed).

A legal hold blocks destruction; `app.wiring.wire` gives each keyring the data-subject-request
domain's check, and a keyring without one refuses to destroy keys. An optional grace period
can be cancelled before it ends.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import utcnow
from app.errors import Conflict, NotFound
from app.keys import rows
from app.keys import transaction as tx
from app.keys.errors import NotWired
from app.keys.keyring import Keyring
from app.keys.models import KeyState, SubjectKey


class LegalHoldActive(Conflict):
    type, title = "legal-hold", "Legal hold"


def hold_reason(session: Session, keyring: Keyring, subject_id: str) -> str | None:
    """Why a legal hold keeps this subject's keys, or None; NotWired (fail closed) when no
    hold check was wired into this keyring (`app.wiring.wire`)."""
    if keyring.hold_checks is None:
        raise NotWired("no legal-hold check is wired into this keyring (app.wiring.wire): "
                       "refusing to destroy keys")
    for check in keyring.hold_checks:
        reason = check(session, subject_id)
        if reason:
            return reason
    return None


def _live_keys(session: Session, subject_id: str) -> list[SubjectKey]:
    return list(session.scalars(select(SubjectKey).where(
        SubjectKey.subject_id == subject_id, SubjectKey.state != KeyState.DESTROYED)
        .order_by(SubjectKey.id).with_for_update()  # the order writers lock them in
        .execution_options(populate_existing=True)))  # as locked, not as loaded before


def _check_hold(session: Session, keyring: Keyring, caller: Caller, subject_id: str) -> None:
    reason = hold_reason(session, keyring, subject_id)
    if reason:
        audit.record(session, caller=caller, action="keys.destruction_refused",
                     outcome=audit.Outcome.DENIED, subject_id=subject_id,
                     details={"reason": "legal hold"})
        raise LegalHoldActive(f"a legal hold blocks destroying this subject's keys: {reason}")


def destroy_subject_keys(session: Session, keyring: Keyring, *, caller: Caller, subject_id: str,
                         grace: timedelta | None = None) -> datetime | None:
    """Destroy now, or schedule destruction after `grace`; returns the scheduled time."""
    _check_hold(session, keyring, caller, subject_id)
    keys = _live_keys(session, subject_id)
    if not keys:
        raise NotFound("this subject has no keys to destroy")
    if grace:
        when = utcnow() + grace
        for key in keys:
            key.destroy_after = when
        audit.record(session, caller=caller, action="keys.destruction_scheduled",
                     subject_id=subject_id, details={"keys": len(keys),
                                                     "grace_seconds": int(grace.total_seconds())})
        return when
    _destroy(session, keyring, caller=caller, subject_id=subject_id, keys=keys)
    return None


def _destroy(session: Session, keyring: Keyring, *, caller: Caller, subject_id: str,
             keys: list[SubjectKey]) -> None:
    now, destroyed = utcnow(), []
    while keys:
        for key in keys:
            key.wrapped_dek, key.state = None, KeyState.DESTROYED
            key.destroyed_at, key.destroy_after = now, None
        destroyed += keys
        session.flush()
        # A write or rotation the lock waited for may have made keys the first look could not
        # see (not committed then); a new statement sees them: until none is left.
        keys = _live_keys(session, subject_id)
    rows.bump_shred_epoch(session)  # other processes drop their cached keys
    keyring.cache.evict(subject_id)
    tx.forget(session, subject_id, [key.version for key in destroyed])
    audit.record(session, caller=caller, action="keys.destroyed", subject_id=subject_id,
                 details={"keys": len(destroyed), "versions": [k.version for k in destroyed]})


def cancel_destruction(session: Session, *, caller: Caller, subject_id: str) -> int:
    keys = [k for k in _live_keys(session, subject_id) if k.destroy_after is not None]
    if not keys:
        raise NotFound("no destruction is scheduled for this subject")
    for key in keys:
        key.destroy_after = None
    audit.record(session, caller=caller, action="keys.destruction_cancelled",
                 subject_id=subject_id, details={"keys": len(keys)})
    return len(keys)


def destroy_due(session: Session, keyring: Keyring, *, caller: Caller,
                now: datetime | None = None) -> list[str]:
    """Destroy keys whose grace period has ended (held subjects are left, and audited)."""
    now = now or utcnow()
    subjects = sorted(set(session.scalars(select(SubjectKey.subject_id).where(
        SubjectKey.destroy_after.is_not(None), SubjectKey.destroy_after <= now,
        SubjectKey.state != KeyState.DESTROYED))))
    destroyed = []
    for subject_id in subjects:
        # Looked at again once locked: a cancellation, a later time or a hold committed since
        # the list was read stops it, and so does another destroyer having done it.
        keys = _live_keys(session, subject_id)
        if not any(key.destroy_after is not None and key.destroy_after <= now for key in keys):
            continue
        reason = hold_reason(session, keyring, subject_id)
        if reason:
            audit.record(session, caller=caller, action="keys.destruction_refused",
                         outcome=audit.Outcome.DENIED, subject_id=subject_id,
                         details={"reason": "legal hold"})
            continue
        _destroy(session, keyring, caller=caller, subject_id=subject_id, keys=keys)
        destroyed.append(subject_id)
    return destroyed
