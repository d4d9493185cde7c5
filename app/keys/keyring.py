"""Per-subject data keys: created on first use, wrapped under the KEK, cached unwrapped for a
short time, and rotated long before a random-nonce key may safely be used 2^32 times.

Only unwrapped keys are cached (DEKs bounded, both time-limited, both dropped with the shred
epoch); every other fact about keys is read from the database when needed, at most once per
transaction for a subject's list of keys. Each transaction that uses keys first reads, in one
round trip, the shred epoch and the newest recorded KEK version (or takes them from the
statement it sent just before, `read_ahead`):
- destroying keys bumps the shred epoch in the same transaction, and a process that sees it
  moved drops its whole cache, so a destroyed key stops working at once everywhere; a key
  loaded by a transaction that read an epoch the process has since left is not cached;
- a write also takes a key-share lock on the row of the key it encrypts with, in its own
  transaction: a destruction waits for the write to commit (and then destroys what it wrote),
  or the write sees the key destroyed and makes a new one; never a value stored under a key
  that was already destroyed;
- a KEK version created by another process (a rotation) is loaded on first sight, and its
  check value compared, so rotation needs no restart; material that does not match the check
  value seals the keyring with the reason.

Nonce accounting: each encryption spends one use of its key. Uses are reserved in the database
in blocks, in the caller's transaction, so the count can only over-state what was spent.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable

from cryptography.exceptions import InvalidTag
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.db import is_postgres, statements_sent
from app.errors import Conflict
from app.keys import kek_versions
from app.keys.cache import KeyCache
from app.keys.ciphers import CipherSpec, cipher
from app.keys.datakey import DataKey, SubjectKeys, dek_aad, service_key_aad
from app.keys.errors import KeyDamaged, KeyRetired, NoSuchKey, NotWired, Sealed, SubjectErased
from app.keys.kek import KekProvider, KekUnavailable
from app.keys.models import KekVersion, KeySetting, KeyState, ServiceKey, SubjectKey

ROTATE_AFTER_USES = 2**31  # half the NIST SP 800-38D bound for random 96-bit nonces
RESERVE_BLOCK = 4096
MIN_KEK_SETTING = "kek_min_version"
SHRED_EPOCH_SETTING = "shred_epoch"
# session.info: (transaction, keys locked in it as still active, the shred epoch it read)
_CHECKED = "pgw_keys_checked"
_SEEN = "pgw_keys_seen"  # session.info: (transaction, {subject: what its locked keys showed})
# session.info: (transaction, statements sent by then, (epoch, latest)): see `read_ahead`
_READ_AHEAD = "pgw_keys_read_ahead"
# built once: their cache keys are then memoised instead of computed on every transaction
_EPOCH = select(KeySetting.value).where(KeySetting.name == SHRED_EPOCH_SETTING).scalar_subquery()
_KEK_LATEST = select(func.max(KekVersion.version)).scalar_subquery()
_STATE = select(_EPOCH, _KEK_LATEST)
# The same two values as columns another domain may add to the first statement of its
# transaction (a read adds them to its record's), handed to `read_ahead`: one round trip less.
STATE_COLUMNS = (_EPOCH.label("pgw_shred_epoch"), _KEK_LATEST.label("pgw_kek_latest"))


# Set on each keyring by `app.wiring.wire`: the checks a legal hold makes before keys are
# destroyed (the reason a hold blocks, or None), and the domains' re-encryptors (given the
# subject, rewrite their stored values under the new key; how many).
HoldCheck = Callable[[Session, str], str | None]
Reencryptor = Callable[[Session, "Keyring", str], int]


class Keyring:
    def __init__(self, *, kek: KekProvider, cipher_name: str, cache_size: int, ttl: float,
                 rotate_after: int = ROTATE_AFTER_USES,
                 clock: Callable[[], float] = time.monotonic):
        self.kek = kek
        self.cipher = cipher(cipher_name)
        self.rotate_after = rotate_after
        self.cache = KeyCache(size=cache_size, ttl=ttl, clock=clock)
        self._lock = threading.Lock()  # the KEK's versions and the reasons to seal
        self._kek_latest: int | None = None  # the newest version recorded in the database
        self._verified = False
        self.seal_reasons: list[str] = []
        self.hold_checks: tuple[HoldCheck, ...] | None = None
        self.reencryptors: tuple[Reencryptor, ...] | None = None

    def hold_reason(self, session: Session, subject_id: str) -> str | None:
        """Why a legal hold keeps this subject's keys, or None; NotWired (fail closed) when
        no hold check was wired into this keyring."""
        if self.hold_checks is None:
            raise NotWired("no legal-hold check is wired into this keyring (app.wiring.wire): "
                           "refusing to destroy keys")
        for check in self.hold_checks:
            reason = check(session, subject_id)
            if reason:
                return reason
        return None

    def wired_reencryptors(self) -> tuple[Reencryptor, ...]:
        if self.reencryptors is None:
            raise NotWired("no re-encryptor is wired into this keyring (app.wiring.wire): "
                           "refusing to rotate data keys")
        return self.reencryptors

    def _checked(self, session: Session) -> set[tuple[str, int]]:
        """Once per transaction: drop cached keys if any key was destroyed anywhere, learn new
        KEK versions; refuse if the KEK material is wrong. The keys this transaction has locked
        as active (filled by `for_encryption`)."""
        transaction = session.get_transaction()
        state = session.info.get(_CHECKED)
        if state is not None and state[0] is transaction:
            known: set[tuple[str, int]] = state[1]
            return known
        ahead = session.info.pop(_READ_AHEAD, None)
        fresh = ahead is not None and ahead[0] is transaction and ahead[1] is not None and \
            ahead[1] == statements_sent(session)
        epoch, latest = ahead[2] if fresh else session.execute(_STATE).one()
        self.cache.follow(epoch or 0)
        if not self._verified or (latest is not None and latest not in self.kek.versions()):
            self._learn(session)
        self._kek_latest = latest
        if self.seal_reasons:
            raise Sealed("; ".join(self.seal_reasons))
        checked: set[tuple[str, int]] = set()
        session.info[_CHECKED] = (session.get_transaction(), checked, epoch or 0)
        session.info[_SEEN] = (session.get_transaction(), {})
        return checked

    def read_ahead(self, session: Session, epoch: int | None, latest: int | None) -> None:
        """The key state as the statement just sent read it (`STATE_COLUMNS`), for this
        transaction's first use of keys instead of a statement of its own, if that use comes
        before any other statement: as when the state is read just before the key is used. Once
        another statement has gone (a grant or consent looked up), the state is read again.
        Checked at that use, not now: a transaction that uses no key is not refused for the
        keyring's state."""
        session.info[_READ_AHEAD] = (session.get_transaction(), statements_sent(session),
                                     (epoch, latest))

    def _keep(self, session: Session, key: DataKey, *, active: bool = False) -> None:
        """Cache a key this transaction loaded, if the cache is still of the shred epoch the
        transaction read. Otherwise a destruction committed meanwhile and another request has
        dropped the cache: this transaction still uses the key, as it saw it active."""
        self.cache.keep(key, epoch=session.info[_CHECKED][2], active=active)

    def _seen(self, session: Session) -> dict[str, SubjectKeys]:
        state = session.info[_SEEN]  # set by _checked, for this transaction
        seen: dict[str, SubjectKeys] = state[1]
        return seen

    def _learn(self, session: Session) -> tuple[dict[int, bytes], int]:
        """Load KEK versions created elsewhere and compare every version with its check value;
        the recorded check values and the minimum version accepted, as read for that."""
        checks, min_version = kek_versions.recorded(session), self.min_kek_version(session)
        with self._lock:
            self.kek.reload()
            self.seal_reasons = kek_versions.mismatches(self.kek, checks, min_version=min_version)
            self._verified = True
        return checks, min_version

    def sync(self, session: Session) -> list[str]:
        """Check the KEK against the database and record versions in use that have no check
        value yet (start-up, readiness). The reasons this process cannot serve, if any."""
        unrecordable = kek_versions.record_all(session, self.kek)
        checks, min_version = self._learn(session)
        with self._lock:
            self.seal_reasons = [*self.seal_reasons, *unrecordable]
        self._kek_latest = max(checks, default=None)
        return [*self.seal_reasons,
                *kek_versions.missing(self.kek, checks, min_version=min_version)]

    def evict(self, subject_id: str) -> None:
        self.cache.evict(subject_id)

    # -- keys for encrypting and decrypting --------------------------------------------------

    def for_encryption(self, session: Session, subject_id: str,
                       cipher_name: str | None = None) -> DataKey:
        """The subject's active key for a cipher (the deployment's by default), with one use
        spent; created if the subject has none. The subject's active keys are locked (key share)
        in the caller's transaction and seen active there, so none can be destroyed under the
        write."""
        spec = self.cipher if cipher_name is None else cipher(cipher_name)
        checked = self._checked(session)
        seen = self._seen(session)
        if (subject_id, 0) not in checked:
            checked.add((subject_id, 0))  # version 0: this subject's keys are locked
            seen[subject_id] = self._lock_keys(session, subject_id)
            checked.update((subject_id, v) for v in seen[subject_id].active.values())
        key = self.cache.active(subject_id, spec.name)
        if key is not None and key.expires >= self.cache.clock() and \
                next(key.budget, None) is not None:
            if (subject_id, key.version) in checked:
                return key
            self.evict(subject_id)  # destroyed or rotated since it was cached
        key = self._refill(session, subject_id, spec, seen)
        checked.add((subject_id, key.version))
        return key

    def _lock_keys(self, session: Session, subject_id: str) -> SubjectKeys:
        # FOR KEY SHARE, all of the subject's keys at once and in id order: a destruction
        # locks its live ones FOR UPDATE in the same order, so it waits for this transaction
        # and the two never deadlock; another write's refill (FOR NO KEY UPDATE) and a
        # rotation's retiring do not wait. Every state is read (not only the active keys) so
        # that a first key needs no second look for the newest version.
        rows = session.execute(
            select(SubjectKey.version, SubjectKey.cipher, SubjectKey.state)
            .where(SubjectKey.subject_id == subject_id)
            .order_by(SubjectKey.id).with_for_update(read=True, key_share=True)).all()
        return SubjectKeys(latest=max((row.version for row in rows), default=0),
                           active={row.cipher: row.version for row in rows
                                   if row.state == KeyState.ACTIVE})

    def _active_row(self, session: Session, subject_id: str, spec: CipherSpec) -> SubjectKey | None:
        return session.scalar(
            select(SubjectKey).where(SubjectKey.subject_id == subject_id,
                                     SubjectKey.cipher == spec.name,
                                     SubjectKey.state == KeyState.ACTIVE)
            .order_by(SubjectKey.version.desc()).limit(1).with_for_update(key_share=True))

    def _refill(self, session: Session, subject_id: str, spec: CipherSpec,
                seen: dict[str, SubjectKeys]) -> DataKey:
        # Only this cipher's active key is locked: locking all the subject's keys here, to
        # read the latest version in the same round trip, deadlocked racing first keys of two
        # ciphers on PostgreSQL. A subject whose locked keys showed none of this cipher active
        # needs no look: its first key is made at once (and a racing one makes it conflict).
        known = seen.get(subject_id)
        row = None if known is not None and spec.name not in known.active else \
            self._active_row(session, subject_id, spec)
        if row is None or row.uses >= self.rotate_after:
            for _ in range(8):
                created = self._new_version(
                    session, subject_id, spec, retire=row, reserve=RESERVE_BLOCK,
                    latest=known.latest if known is not None and row is None else None)
                known = seen.pop(subject_id, None) if created is None else known
                if created is not None:
                    if known is not None:
                        known.latest, known.active[spec.name] = created[0], created[0]
                    key = self._data_key(subject_id, *created[:2], spec=spec)
                    key.row_id = created[2]
                    key.budget = iter(range(RESERVE_BLOCK - 1))
                    self._keep(session, key, active=True)
                    return key
                # another transaction made a key of the subject just now: use it if it is of
                # this cipher, else take the version after it
                row = self._active_row(session, subject_id, spec)
                if row is not None:
                    break
            else:
                raise Conflict("the subject's keys changed during this request; try again")
        uses = session.execute(
            update(SubjectKey).where(SubjectKey.id == row.id)
            .values(uses=SubjectKey.uses + RESERVE_BLOCK).returning(SubjectKey.uses)
        ).scalar_one()
        key = self._unwrap(session, row)
        key.budget = iter(range(RESERVE_BLOCK - 1 - max(0, uses - self.rotate_after)))
        self._keep(session, key, active=True)
        return key

    def _new_version(self, session: Session, subject_id: str, spec: CipherSpec,
                     retire: SubjectKey | None, reserve: int = 0, latest: int | None = None,
                     ) -> tuple[int, bytes, int] | None:
        """A new active key's version, clear DEK and row id, with `reserve` uses spent; None if
        a concurrent transaction created the same version (or an active key) first. `latest`:
        the newest version as this transaction saw it, if it did."""
        now = utcnow()
        if retire is not None:
            retire.state, retire.retired_at = KeyState.RETIRED, now
            session.flush()  # before the new active key: one active key at a time
        if latest is None:
            latest = session.scalar(select(func.max(SubjectKey.version))
                                    .where(SubjectKey.subject_id == subject_id)) or 0
        version, kek_version = latest + 1, self.current_kek_version()
        dek = secrets.token_bytes(spec.key_bytes)
        # ON CONFLICT DO NOTHING (any unique index) instead of a savepoint: one round trip
        insert = postgresql.insert if is_postgres(session) else sqlite.insert
        row_id = session.scalar(insert(SubjectKey).values(
            subject_id=subject_id, version=version, cipher=spec.name,
            wrapped_dek=self._wrap(kek_version, dek, dek_aad(subject_id, version, spec.name)),
            kek_version=kek_version, state=KeyState.ACTIVE, uses=reserve, created_at=now,
        ).on_conflict_do_nothing().returning(SubjectKey.id))
        return None if row_id is None else (version, dek, row_id)

    def _data_key(self, subject_id: str, version: int, dek: bytes, *,
                  spec: CipherSpec) -> DataKey:
        return DataKey(subject_id=subject_id, version=version, cipher=spec,
                       aead=spec.aead(dek), expires=self.cache.clock() + self.cache.ttl)

    def rotate(self, session: Session, subject_id: str) -> list[tuple[int, int]]:
        """Replace each of the subject's active keys: [(old version, new version), ...]."""
        self._checked(session)
        current = list(session.scalars(select(SubjectKey).where(
            SubjectKey.subject_id == subject_id, SubjectKey.state == KeyState.ACTIVE)
            .order_by(SubjectKey.version).with_for_update()))
        if not current:
            raise LookupError("this subject has no active key")
        replaced = []
        for old in current:
            created = self._new_version(session, subject_id, cipher(old.cipher), retire=old)
            if created is None:
                raise Conflict("the subject's keys changed during the rotation; try again")
            replaced.append((old.version, created[0]))
        self.evict(subject_id)
        return replaced

    def for_decryption(self, session: Session, subject_id: str, version: int) -> DataKey:
        self._checked(session)
        key = self.cache.key(subject_id, version)
        if key is not None:
            return key
        row = session.scalar(select(SubjectKey).where(SubjectKey.subject_id == subject_id,
                                                      SubjectKey.version == version))
        if row is None:
            raise NoSuchKey("no key for this subject: it was erased or never existed")
        key = self._unwrap(session, row)
        self._keep(session, key)
        return key

    def _unwrap(self, session: Session, row: SubjectKey) -> DataKey:
        if row.state == KeyState.DESTROYED or row.wrapped_dek is None:
            raise SubjectErased("the data subject was erased: their key was destroyed, so this "
                                "value can no longer be decrypted")
        if row.kek_version < self.min_kek_version(session):
            raise KeyRetired(f"this key is wrapped under KEK version {row.kek_version}, which "
                             "is retired")
        if row.kek_version not in self.kek.versions():  # made by a rotation elsewhere
            self._learn(session)
            if self.seal_reasons:
                raise Sealed("; ".join(self.seal_reasons))
        aad = dek_aad(row.subject_id, row.version, row.cipher)
        try:
            dek = self.kek.unwrap(row.kek_version, row.wrapped_dek, aad)
        except KekUnavailable as exc:
            raise Sealed(str(exc)) from None
        except (InvalidTag, ValueError):
            raise KeyDamaged(f"data key version {row.version} of subject {row.subject_id!r} does "
                             f"not authenticate under KEK version {row.kek_version}, whose check "
                             "value does: the stored key is damaged; restore it from a backup",
                             subject_id=row.subject_id, key_version=row.version) from None
        key = self._data_key(row.subject_id, row.version, dek, spec=cipher(row.cipher))
        key.row_id = row.id
        return key

    def _wrap(self, version: int, secret: bytes, aad: bytes) -> bytes:
        try:
            return self.kek.wrap(version, secret, aad)
        except KekUnavailable as exc:
            raise Sealed(f"{exc}: new keys are wrapped under the newest recorded version, "
                         "which this process lacks") from None

    # -- KEK versions and service keys -------------------------------------------------------

    def bump_shred_epoch(self, session: Session) -> None:
        setting = session.get(KeySetting, SHRED_EPOCH_SETTING, with_for_update=True)
        if setting is None:
            session.add(KeySetting(name=SHRED_EPOCH_SETTING, value=1))
        else:
            setting.value += 1
        session.flush()

    def current_kek_version(self) -> int:
        """The version new keys are wrapped under: the newest recorded in the database (as of
        this transaction's check), else this process's newest."""
        return self._kek_latest or max(self.kek.versions())

    def min_kek_version(self, session: Session) -> int:
        return session.scalar(select(KeySetting.value)
                              .where(KeySetting.name == MIN_KEK_SETTING)) or 0

    def service_key(self, session: Session, name: str) -> bytes:
        """A 256-bit key of the service (e.g. for blind indexes), created on first use."""
        self._checked(session)
        cached = self.cache.service(name)
        if cached is not None:
            return cached
        aad = service_key_aad(name)
        row = session.get(ServiceKey, name)
        if row is None:
            version = self.current_kek_version()
            row = ServiceKey(name=name, kek_version=version, created_at=utcnow(),
                             wrapped=self._wrap(version, secrets.token_bytes(32), aad))
            try:
                with session.begin_nested():
                    session.add(row)
            except IntegrityError:  # another transaction made it first: use theirs
                row = session.get(ServiceKey, name)
                if row is None:
                    raise
        if row.kek_version not in self.kek.versions():
            self._learn(session)
        try:
            clear = self.kek.unwrap(row.kek_version, row.wrapped, aad)
        except KekUnavailable as exc:
            raise Sealed(str(exc)) from None
        except (InvalidTag, ValueError):
            raise KeyDamaged(f"service key {name!r} does not authenticate under KEK version "
                             f"{row.kek_version}: the stored key is damaged") from None
        self.cache.keep_service(name, clear)
        return clear
