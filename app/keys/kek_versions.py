"""The KEK versions a deployment uses, recorded in the database with a check value each.

A check value is a fixed block wrapped under one KEK version. A process whose key material for
that version does not open it has the wrong key (a wrong key file, a mistyped `PGW_KEK`, a damaged
token object): it seals itself with that reason instead of failing every call with a generic
error. The table is also how a process learns that another one created a version (a rotation
from the CLI or another worker), and which version new keys are wrapped under.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidTag
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.keys.kek import KekProvider, KekUnavailable
from app.keys.models import KekVersion, ServiceKey, SubjectKey

CHECK_BLOCK = bytes(32)


def _aad(version: int) -> bytes:
    return f"pgw-kek-check\x00{version}".encode()


def opens(kek: KekProvider, version: int, check_value: bytes) -> bool:
    """True if this process's key material for `version` opens the recorded check value."""
    try:
        return kek.unwrap(version, check_value, _aad(version)) == CHECK_BLOCK
    except (InvalidTag, ValueError):
        return False


def recorded(session: Session) -> dict[int, bytes]:
    return dict(session.execute(select(KekVersion.version, KekVersion.check_value)).all())


def latest(session: Session) -> int | None:
    return session.scalar(select(func.max(KekVersion.version)))


def mismatches(kek: KekProvider, checks: dict[int, bytes], *, min_version: int) -> list[str]:
    """Why this process's KEK material is wrong, one reason per version (empty when right).
    Versions the process does not have are not mismatches: see `missing`."""
    have = set(kek.versions())
    return [f"KEK version {version} does not match the check value recorded for it: the key "
            "material (key file, PGW_KEK or token object) is wrong or damaged"
            for version, check in sorted(checks.items())
            if version >= min_version and version in have and not opens(kek, version, check)]


def missing(kek: KekProvider, checks: dict[int, bytes], *, min_version: int) -> list[str]:
    have = set(kek.versions())
    return [f"KEK version {version} is in use but not available to this process"
            for version in sorted(checks) if version >= min_version and version not in have]


def _a_wrapped_key_opens(session: Session, kek: KekProvider, version: int) -> bool | None:
    """Whether an existing key wrapped under `version` opens (None if there is none): a
    version recorded only now must not be recorded from the wrong material."""
    from app.keys.datakey import dek_aad, service_key_aad

    try:
        service = session.scalar(select(ServiceKey).where(ServiceKey.kek_version == version)
                                 .limit(1))
        if service is not None:
            kek.unwrap(version, service.wrapped, service_key_aad(service.name))
            return True
        subject = session.scalar(select(SubjectKey).where(
            SubjectKey.kek_version == version, SubjectKey.wrapped_dek.is_not(None)).limit(1))
        if subject is None or subject.wrapped_dek is None:
            return None
        kek.unwrap(version, subject.wrapped_dek,
                   dek_aad(subject.subject_id, subject.version, subject.cipher))
        return True
    except (InvalidTag, ValueError, KekUnavailable):
        return False


def record(session: Session, kek: KekProvider, version: int) -> str | None:
    """Record the check value of a version this process has; the reason if it cannot be."""
    if _a_wrapped_key_opens(session, kek, version) is False:
        return (f"KEK version {version} does not open the keys wrapped under it: the key "
                "material (key file, PGW_KEK or token object) is wrong or damaged")
    row = KekVersion(version=version, created_at=utcnow(),
                     check_value=kek.wrap(version, CHECK_BLOCK, _aad(version)))
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:  # another process recorded it first; theirs is compared next time
        pass
    return None


def _in_use(session: Session) -> set[int]:
    subject = session.scalars(select(SubjectKey.kek_version).distinct()
                              .where(SubjectKey.wrapped_dek.is_not(None)))
    service = session.scalars(select(ServiceKey.kek_version).distinct())
    return {*subject, *service}


def record_all(session: Session, kek: KekProvider) -> list[str]:
    """Record the versions this process has that are in use but not recorded (a database from
    before check values), or all of them on a new database; the reasons it could not (material
    that does not open what is already wrapped under it). A version the process has and nobody
    uses stays unrecorded until a rotation adopts it, so one process cannot make a version
    current that the others lack."""
    known = recorded(session)
    wanted = _in_use(session) if known else set(kek.versions())
    return [reason for version in sorted(wanted & set(kek.versions()) - known.keys())
            for reason in [record(session, kek, version)] if reason]


def next_version(session: Session, kek: KekProvider) -> int:
    """The version a KEK rotation moves to: one this process already has above every recorded
    version (added by the operator, as PGW_KEK requires), else a new one from the provider."""
    kek.reload()
    above = [v for v in kek.versions() if v > (latest(session) or 0)]
    return min(above) if above else kek.create_version()
