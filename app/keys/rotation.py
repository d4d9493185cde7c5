"""Key rotation, resumable after a crash at any point.

KEK rotation rewraps every DEK (and service key) under the new KEK version in batches; each
batch commits together with the progress counter, and each DEK is rewrapped with a
compare-and-set on its KEK version, so a resumed or concurrent run never rewraps a key twice.
DEK rotation gives a subject a new active key; values encrypted under the old one stay
readable through its retired version.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import utcnow
from app.db import is_postgres
from app.errors import Conflict
from app.jobs import queue
from app.keys import kek_versions
from app.keys.datakey import dek_aad, service_key_aad
from app.keys.errors import NotWired
from app.keys.keyring import Keyring
from app.keys.models import (
    KeyRotation,
    KeySetting,
    KeyState,
    RotationKind,
    RotationStatus,
    ServiceKey,
    SubjectKey,
)
from app.keys.rows import MIN_KEK_SETTING

Progress = Callable[[int, int], None]


def _running(session: Session, kind: RotationKind) -> KeyRotation | None:
    return session.scalar(select(KeyRotation).where(KeyRotation.kind == kind,
                                                    KeyRotation.status == RotationStatus.RUNNING))


def _pending(session: Session, target: int) -> int:
    return session.scalar(select(func.count()).select_from(SubjectKey).where(
        SubjectKey.kek_version < target, SubjectKey.wrapped_dek.is_not(None))) or 0


def start_kek_rotation(session: Session, keyring: Keyring, *, caller: Caller) -> KeyRotation:
    """Create the next KEK version and a rotation record, or return the one still running."""
    running = _running(session, RotationKind.KEK)
    if running is not None:
        return running
    target = kek_versions.next_version(session, keyring.kek)
    reason = kek_versions.record(session, keyring.kek, target)
    if reason:
        raise Conflict(reason)
    rotation = KeyRotation(kind=RotationKind.KEK, target_version=target,
                           status=RotationStatus.RUNNING, processed=0,
                           total=_pending(session, target), started_at=utcnow())
    session.add(rotation)
    session.flush()
    audit.record(session, caller=caller, action="keys.kek_rotation_started",
                 details={"version": target, "keys": rotation.total})
    return rotation


def run_kek_rotation(factory: sessionmaker[Session], keyring: Keyring, *, caller: Caller,
                     batch_size: int = 500, progress: Progress | None = None,
                     rotation_id: int | None = None) -> KeyRotation:
    """Run the rotation `rotation_id` (or the running one, or a new one) to its end."""
    with factory() as session:
        if rotation_id is None:
            rotation = start_kek_rotation(session, keyring, caller=caller)
        else:  # a job resumes its own rotation, and never starts another after it is done
            rotation = session.get_one(KeyRotation, rotation_id)
            if rotation.status == RotationStatus.DONE:
                return rotation
        session.commit()
        rotation_id, target = rotation.id, rotation.target_version
    while True:
        with factory() as session:
            done = _rewrap_batch(session, keyring, target, batch_size)
            rotation = session.get_one(KeyRotation, rotation_id)
            rotation.processed += done
            if done == 0:
                _rewrap_service_keys(session, keyring, target)
                rotation.status, rotation.finished_at = RotationStatus.DONE, utcnow()
                audit.record(session, caller=caller, action="keys.kek_rotated",
                             details={"version": target, "rewrapped": rotation.processed})
            session.commit()
            if progress:
                progress(rotation.processed, rotation.total)
            if done == 0:
                return rotation


def _rewrap_batch(session: Session, keyring: Keyring, target: int, batch_size: int) -> int:
    query = (select(SubjectKey).where(SubjectKey.kek_version < target,
                                      SubjectKey.wrapped_dek.is_not(None))
             .order_by(SubjectKey.id).limit(batch_size))
    if is_postgres(session):
        query = query.with_for_update(skip_locked=True)
    done = 0
    for key in session.scalars(query).all():
        assert key.wrapped_dek is not None  # noqa: S101 - selected for it
        aad = dek_aad(key.subject_id, key.version, key.cipher)
        dek = keyring.kek.unwrap(key.kek_version, key.wrapped_dek, aad)
        result = session.execute(
            update(SubjectKey).where(SubjectKey.id == key.id,
                                     SubjectKey.kek_version == key.kek_version)
            .values(wrapped_dek=keyring.kek.wrap(target, dek, aad), kek_version=target)
            .execution_options(synchronize_session=False))
        done += result.rowcount  # type: ignore[attr-defined]
    return done


def _rewrap_service_keys(session: Session, keyring: Keyring, target: int) -> None:
    for key in session.scalars(select(ServiceKey).where(ServiceKey.kek_version < target)):
        aad = service_key_aad(key.name)
        key.wrapped = keyring.kek.wrap(target, keyring.kek.unwrap(key.kek_version, key.wrapped,
                                                                 aad), aad)
        key.kek_version = target


def start_dek_rotation(session: Session) -> KeyRotation:
    """A record for new data keys for every subject, or the one still running."""
    running = _running(session, RotationKind.DEK)
    if running is not None:
        return running
    rotation = KeyRotation(kind=RotationKind.DEK, target_version=0,
                           status=RotationStatus.RUNNING, processed=0, total=0, started_at=utcnow())
    session.add(rotation)
    session.flush()
    return rotation


def run_dek_rotation(factory: sessionmaker[Session], keyring: Keyring, *, caller: Caller,
                     progress: Progress | None = None, rotation_id: int | None = None) -> int:
    """Give every subject whose active key predates the rotation new data keys, one
    transaction per subject (resumable: a resumed run skips the subjects already done);
    returns how many subjects this run rotated."""
    with factory() as session:
        if rotation_id is None:
            record = start_dek_rotation(session)
        else:
            record = session.get_one(KeyRotation, rotation_id)
            if record.status == RotationStatus.DONE:
                return 0
        subjects = list(session.scalars(select(SubjectKey.subject_id).where(
            SubjectKey.state == KeyState.ACTIVE, SubjectKey.created_at < record.started_at)))
        record.total = record.processed + len(subjects)
        record_id = record.id
        session.commit()
    for subject_id in subjects:
        with factory() as session:
            rotate_subject_dek(session, keyring, caller=caller, subject_id=subject_id)
            current = session.get_one(KeyRotation, record_id)
            current.processed += 1
            session.commit()
            if progress:
                progress(current.processed, current.total)
    with factory() as session:
        current = session.get_one(KeyRotation, record_id)
        current.status, current.finished_at = RotationStatus.DONE, utcnow()
        session.commit()
    return len(subjects)


# The job kinds that carry a rotation through to its end, crash-safe: a worker that dies
# leaves the job to another, which resumes the same rotation record.
KEK_ROTATION_JOB = "keys.kek_rotation"
DEK_ROTATION_JOB = "keys.dek_rotation"


def enqueue_rotation(session: Session, rotation: KeyRotation, *, caller: Caller) -> int:
    """The id of the job that runs `rotation` to its end: queued now, or already queued."""
    ref = f"key_rotation:{rotation.id}"
    existing = queue.unfinished_for(session, ref)
    if existing is not None:
        return existing
    kind = KEK_ROTATION_JOB if rotation.kind == RotationKind.KEK else DEK_ROTATION_JOB
    job = queue.enqueue(session, kind, {"rotation_id": rotation.id, "caller": caller.sub,
                                        "roles": list(caller.roles),
                                        "request_id": caller.request_id}, ref=ref)
    assert job is not None  # noqa: S101 - no dedupe key
    return job.id


def job_caller(payload: dict[str, Any]) -> Caller:
    """The caller who asked for a rotation, as its job's audit entries name them."""
    return Caller(sub=payload["caller"], roles=tuple(payload.get("roles", ())),
                  request_id=payload.get("request_id"))


def retire_kek_versions(session: Session, *, caller: Caller, below: int) -> None:
    """Refuse KEK versions below `below` from now on; only once nothing is wrapped under them."""
    left = _pending(session, below) + (session.scalar(select(func.count()).select_from(
        ServiceKey).where(ServiceKey.kek_version < below)) or 0)
    if left:
        raise Conflict(f"{left} keys are still wrapped under KEK versions below {below}: "
                       "finish the rotation first")
    setting = session.get(KeySetting, MIN_KEK_SETTING)
    if setting is None:
        session.add(KeySetting(name=MIN_KEK_SETTING, value=below))
    else:
        setting.value = max(setting.value, below)
    audit.record(session, caller=caller, action="keys.kek_retired", details={"below": below})


def rotate_subject_dek(session: Session, keyring: Keyring, *, caller: Caller,
                       subject_id: str) -> int:
    """Give the subject new data keys and re-encrypt their stored values; returns the newest
    version. Values held elsewhere stay readable through the retired versions."""
    reencryptors = keyring.reencryptors
    if reencryptors is None:
        raise NotWired("no re-encryptor is wired into this keyring (app.wiring.wire): "
                       "refusing to rotate data keys")
    try:
        replaced = keyring.rotate(session, subject_id)
    except LookupError:
        raise Conflict("this subject has no active key to rotate") from None
    rewritten = sum(reencrypt(session, keyring, subject_id) for reencrypt in reencryptors)
    audit.record(session, caller=caller, action="keys.dek_rotated", subject_id=subject_id,
                 details={"from_versions": [old for old, _ in replaced],
                          "to_versions": [new for _, new in replaced],
                          "values_reencrypted": rewritten})
    return max(new for _, new in replaced)
