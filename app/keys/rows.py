"""What the keyring reads and writes in its own tables, each statement built once (its compiled
form is then cached instead of built on every transaction)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import bindparam, func, select, true, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.db import is_postgres
from app.keys.ciphers import CipherName
from app.keys.datakey import SubjectKeys
from app.keys.models import KekVersion, KeySetting, KeyState, SubjectKey

MIN_KEK_SETTING = "kek_min_version"
SHRED_EPOCH_SETTING = "shred_epoch"

_EPOCH = select(KeySetting.value).where(KeySetting.name == SHRED_EPOCH_SETTING).scalar_subquery()
_KEK_LATEST = select(func.max(KekVersion.version)).scalar_subquery()
# The keyring's state: the shred epoch and the newest recorded KEK version.
STATE = select(_EPOCH, _KEK_LATEST)
# The same two values as columns another domain may add to the first statement of its
# transaction (a read adds them to its record's), handed to `Keyring.read_ahead`.
STATE_COLUMNS = (_EPOCH.label("pgw_shred_epoch"), _KEK_LATEST.label("pgw_kek_latest"))

# A subject's keys, locked FOR KEY SHARE, all at once and in id order: a destruction locks its
# live ones FOR UPDATE in the same order, so it waits for the locking transaction and the two
# never deadlock; another write's reservation (FOR NO KEY UPDATE) and a rotation's retiring do
# not wait. Every state is read (not only the active keys), so that a first key needs no
# second look for the newest version.
_LOCK = (select(SubjectKey.version, SubjectKey.cipher, SubjectKey.state)
         .where(SubjectKey.subject_id == bindparam("pgw_subject"))
         .order_by(SubjectKey.id).with_for_update(read=True, key_share=True))
# The same with the keyring's state in one statement: one row without a key for a subject
# who has none yet.
_KEYS = _LOCK.subquery("pgw_keys")
_STATE_ROW = select(_EPOCH.label("epoch"), _KEK_LATEST.label("latest")).subquery("pgw_state")
_STATE_AND_LOCK = select(_STATE_ROW.c.epoch, _STATE_ROW.c.latest, _KEYS.c.version,
                         _KEYS.c.cipher, _KEYS.c.state
                         ).select_from(_STATE_ROW.outerjoin(_KEYS, true()))
# New keys: ON CONFLICT DO NOTHING (any unique index) instead of a savepoint, one round trip
# for any number of keys.
_INSERT = {name: dialect.insert(SubjectKey).on_conflict_do_nothing()
           .returning(SubjectKey.id, SubjectKey.version)
           for name, dialect in (("postgresql", postgresql), ("sqlite", sqlite))}
# The active key of a cipher, locked for reserving uses on it (FOR NO KEY UPDATE).
_ACTIVE = (select(SubjectKey).where(SubjectKey.subject_id == bindparam("pgw_subject"),
                                    SubjectKey.cipher == bindparam("pgw_cipher"),
                                    SubjectKey.state == KeyState.ACTIVE)
           .order_by(SubjectKey.version.desc()).limit(1).with_for_update(key_share=True))
_RESERVE = (update(SubjectKey).where(SubjectKey.id == bindparam("pgw_id"))
            .values(uses=SubjectKey.uses + bindparam("pgw_count", type_=SubjectKey.uses.type))
            .returning(SubjectKey.uses))

_LATEST = (select(func.max(SubjectKey.version))
           .where(SubjectKey.subject_id == bindparam("pgw_subject")))
_MIN_KEK = select(KeySetting.value).where(KeySetting.name == MIN_KEK_SETTING)


def _subject_keys(rows: Sequence[Any]) -> SubjectKeys:
    keys = [row for row in rows if row.version is not None]
    return SubjectKeys(latest=max((row.version for row in keys), default=0),
                       active={row.cipher: row.version for row in keys
                               if row.state == KeyState.ACTIVE})


def state_and_lock(session: Session, subject_id: str
                   ) -> tuple[int | None, int | None, SubjectKeys]:
    """The shred epoch, the newest KEK version and the subject's keys, locked: one statement."""
    rows = session.execute(_STATE_AND_LOCK, {"pgw_subject": subject_id}).all()
    return rows[0].epoch, rows[0].latest, _subject_keys(rows)


def lock(session: Session, subject_id: str) -> SubjectKeys:
    """The subject's keys, locked."""
    return _subject_keys(session.execute(_LOCK, {"pgw_subject": subject_id}).all())


def insert(session: Session, subject_id: str, kek_version: int, reserve: int,
           keys: list[tuple[int, CipherName, bytes]]) -> list[tuple[int, int]]:
    """New active keys (version, cipher, wrapped key), each with `reserve` uses spent, in one
    statement: (id, version) of those made (one that conflicts with a key made meanwhile, by
    version or as a second active key of its cipher, is not)."""
    now = utcnow()
    made = session.connection().execute(
        _INSERT["postgresql" if is_postgres(session) else "sqlite"],
        [{"subject_id": subject_id, "version": version, "cipher": cipher, "wrapped_dek": wrapped,
          "kek_version": kek_version, "state": KeyState.ACTIVE, "uses": reserve,
          "created_at": now} for version, cipher, wrapped in keys])
    return [(row_id, version) for row_id, version in made]


def active(session: Session, subject_id: str, cipher: CipherName) -> SubjectKey | None:
    """The subject's active key of the cipher, locked for reserving uses on it."""
    return session.scalar(_ACTIVE, {"pgw_subject": subject_id, "pgw_cipher": cipher})


def reserve(session: Session, row_id: int, count: int) -> int:
    """Spend `count` more uses of a key: how many are spent now."""
    uses: int = session.execute(_RESERVE, {"pgw_id": row_id, "pgw_count": count}).scalar_one()
    return uses


def latest_version(session: Session, subject_id: str) -> int:
    return session.scalar(_LATEST, {"pgw_subject": subject_id}) or 0


def min_kek_version(session: Session) -> int:
    return session.scalar(_MIN_KEK) or 0


def bump_shred_epoch(session: Session) -> None:
    setting = session.get(KeySetting, SHRED_EPOCH_SETTING, with_for_update=True)
    if setting is None:
        session.add(KeySetting(name=SHRED_EPOCH_SETTING, value=1))
    else:
        setting.value += 1
    session.flush()
