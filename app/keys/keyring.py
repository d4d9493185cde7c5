"""Per-subject data keys: created on first use, wrapped under the KEK, cached unwrapped for a
short time, and rotated long before a random-nonce key may safely be used 2^32 times.

Only unwrapped keys are cached (DEKs bounded, both time-limited, both dropped with the shred
epoch); every other fact about keys is read from the database when needed, at most once per
transaction for a subject's list of keys. Each transaction that uses keys first reads, in one
round trip, the shred epoch and the newest recorded KEK version (a write with the lock on the
subject's keys; a read from the statement it sent just before, `read_ahead`):
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
from operator import length_hint

from cryptography.exceptions import InvalidTag
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.clock import utcnow
from app.db import statements_sent
from app.errors import Conflict
from app.keys import kek_versions, rows
from app.keys import transaction as tx
from app.keys.cache import KeyCache
from app.keys.ciphers import CipherSpec, cipher
from app.keys.datakey import DataKey, SubjectKeys, dek_aad, service_key_aad
from app.keys.errors import KeyDamaged, KeyRetired, NoSuchKey, Sealed, SubjectErased
from app.keys.kek import KekProvider, KekUnavailable
from app.keys.models import KeyState, ServiceKey, SubjectKey

ROTATE_AFTER_USES = 2**31  # half the NIST SP 800-38D bound for random 96-bit nonces
RESERVE_BLOCK = 4096
_HELD_USES = 64  # a write that holds fewer uses of a cached key reserves more first

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

    def _checked(self, session: Session) -> tx.InTransaction:
        """Once per transaction: drop cached keys if any key was destroyed anywhere, learn new
        KEK versions; refuse if the KEK material is wrong. The keys this transaction has locked
        as active (filled by `for_encryption`)."""
        state = tx.current(session)
        if state is not None:
            return state
        transaction = session.get_transaction()
        ahead = session.info.pop(tx.READ_AHEAD, None)
        fresh = ahead is not None and ahead[0] is transaction and ahead[1] is not None and \
            ahead[1] == statements_sent(session)
        if fresh:
            epoch, latest, asked_at = ahead[2]
        else:
            asked_at = time.monotonic_ns()
            epoch, latest = session.execute(rows.STATE).one()
        self.cache.follow(epoch or 0, asked_at)
        if not self._verified or (latest is not None and latest not in self.kek.versions()):
            self._learn(session)
        self._kek_latest = max(latest or 0, self._kek_latest or 0) or None  # never back
        if self.seal_reasons:
            raise Sealed("; ".join(self.seal_reasons))
        return tx.begin(session, epoch or 0)

    def read_ahead(self, session: Session, epoch: int | None, latest: int | None,
                   asked_at: int) -> None:
        """The key state as the statement just sent read it (`rows.STATE_COLUMNS`; sent at
        `asked_at`, monotonic ns), for this transaction's first use of keys if no other
        statement goes before it (else it is read again). Checked at that use: a transaction
        that uses no key is not refused for it."""
        session.info[tx.READ_AHEAD] = (session.get_transaction(), statements_sent(session),
                                       (epoch, latest, asked_at))

    def _keep(self, session: Session, key: DataKey, *, active: bool = False) -> None:
        """Cache a key this transaction loaded, if the cache is still of the shred epoch the
        transaction read (else a destruction committed meanwhile: this transaction still uses
        the key, as it saw it active); one for encrypting only once the transaction commits."""
        if active:
            tx.hold(session, self.cache, key)
        else:
            self.cache.keep(key, epoch=tx.of(session).epoch)

    def _learn(self, session: Session) -> tuple[dict[int, bytes], int]:
        """Load KEK versions created elsewhere and compare every version with its check value;
        the recorded check values and the minimum version accepted, as read for that."""
        checks, min_version = kek_versions.recorded(session), rows.min_kek_version(session)
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

    # -- keys for encrypting and decrypting --------------------------------------------------

    def for_encryption(self, session: Session, subject_id: str,
                       cipher_name: str | None = None) -> DataKey:
        """The subject's active key for a cipher (the deployment's by default), one use spent;
        made if the subject has none. The subject's keys are locked (key share) in the caller's
        transaction and seen active there: none can be destroyed under the write."""
        spec = self.cipher if cipher_name is None else cipher(cipher_name)
        state = self._locked(session, subject_id)
        key = state.held.get((subject_id, spec.name))
        if key is None or length_hint(key.budget) == 0:
            key = self.cache.usable(subject_id, spec.name, state.checked)
        if key is not None and next(key.budget, None) is not None:
            return key
        key = self._refill(session, subject_id, spec, state.seen)
        state.checked.add((subject_id, key.version))
        return key

    def prepare(self, session: Session, subject_id: str,
                cipher_names: set[str | None]) -> None:
        """Before a write encrypts with these ciphers (None: the deployment's): the subject's
        keys are locked as `for_encryption` locks them, those it has none of are made, all in
        one statement (a new subject's first write: one instead of one each), and uses are
        reserved on the others not cached, in the ciphers' order.

        So racing writes cannot deadlock on keys: reserving uses locks a key's row to the
        commit, and a write that held one key's row and waited to insert or reserve another
        could wait for one doing the same the other way round. A key another transaction
        makes meanwhile is read again and used."""
        specs = sorted({self.cipher if name is None else cipher(name) for name in cipher_names},
                       key=lambda spec: spec.name)
        if not specs:
            return
        state = self._locked(session, subject_id)
        checked, seen = state.checked, state.seen
        for _ in range(8):
            known = seen.get(subject_id)
            if known is None:  # a race was lost: the subject's keys as they are now
                known = seen[subject_id] = rows.lock(session, subject_id)
                checked.update((subject_id, v) for v in known.active.values())
            missing = [spec for spec in specs if spec.name not in known.active]
            if not missing:
                break
            created = self._insert_keys(
                session, subject_id, [(spec, known.latest + n) for n, spec in
                                      enumerate(missing, 1)], reserve=RESERVE_BLOCK)
            for key in created:
                key.budget = iter(range(RESERVE_BLOCK - 1))
                known.active[key.cipher.name] = key.version
                checked.add((subject_id, key.version))
                self._keep(session, key, active=True)
            if len(created) == len(missing):
                known.latest += len(missing)
                break
            seen.pop(subject_id)
        else:
            raise Conflict("the subject's keys changed during this request; try again")
        mine = state.held
        for spec in specs:  # held for this transaction, whatever the cache drops meanwhile
            held = mine.get((subject_id, spec.name)) or \
                self.cache.usable(subject_id, spec.name, checked)
            if held is not None and length_hint(held.budget) >= _HELD_USES:
                mine[(subject_id, spec.name)] = held
            else:
                checked.add((subject_id, self._refill(session, subject_id, spec, seen).version))

    def _locked(self, session: Session, subject_id: str) -> tx.InTransaction:
        """The transaction's state, with this subject's keys locked in it (once per
        transaction)."""
        first = tx.current(session) is None
        if first:  # the keyring's state comes with the lock: one statement for both
            asked_at = time.monotonic_ns()
            epoch, latest, keys = rows.state_and_lock(session, subject_id)
            self.read_ahead(session, epoch, latest, asked_at)
        state = self._checked(session)
        if (subject_id, 0) not in state.checked:
            state.checked.add((subject_id, 0))  # version 0: this subject's keys are locked
            state.seen[subject_id] = keys if first else rows.lock(session, subject_id)
            state.checked.update((subject_id, v) for v in state.seen[subject_id].active.values())
        return state

    def _refill(self, session: Session, subject_id: str, spec: CipherSpec,
                seen: dict[str, SubjectKeys]) -> DataKey:
        # Only this cipher's active key is locked: locking all the subject's keys here, to
        # read the latest version in the same round trip, deadlocked racing first keys of two
        # ciphers on PostgreSQL. A subject whose locked keys showed none of this cipher active
        # needs no look: its first key is made at once (and a racing one makes it conflict).
        known = seen.get(subject_id)
        row = None if known is not None and spec.name not in known.active else \
            rows.active(session, subject_id, spec.name)
        if row is None or row.uses >= self.rotate_after:
            for _ in range(8):
                created = self._new_version(
                    session, subject_id, spec, retire=row, reserve=RESERVE_BLOCK,
                    latest=known.latest if known is not None and row is None else None)
                known = seen.pop(subject_id, None) if created is None else known
                if created is not None:
                    if known is not None:
                        known.latest = known.active[spec.name] = created.version
                    key = created
                    key.budget = iter(range(RESERVE_BLOCK - 1))
                    self._keep(session, key, active=True)
                    return key
                # another transaction made a key of the subject just now: use it if it is of
                # this cipher, else take the version after it
                row = rows.active(session, subject_id, spec.name)
                if row is not None:
                    break
            else:
                raise Conflict("the subject's keys changed during this request; try again")
        uses = rows.reserve(session, row.id, RESERVE_BLOCK)
        key = self._unwrap(session, row)
        key.budget = iter(range(RESERVE_BLOCK - 1 - max(0, uses - self.rotate_after)))
        self._keep(session, key, active=True)
        return key

    def _new_version(self, session: Session, subject_id: str, spec: CipherSpec,
                     retire: SubjectKey | None, reserve: int = 0, latest: int | None = None,
                     ) -> DataKey | None:
        """A new active key with `reserve` uses spent; None if a concurrent transaction
        created the same version (or an active key) first. `latest`: the newest version as
        this transaction saw it, if it did."""
        if retire is not None:
            retire.state, retire.retired_at = KeyState.RETIRED, utcnow()
            session.flush()  # before the new active key: one active key at a time
        if latest is None:
            latest = rows.latest_version(session, subject_id)
        created = self._insert_keys(session, subject_id, [(spec, latest + 1)], reserve=reserve)
        return created[0] if created else None

    def _insert_keys(self, session: Session, subject_id: str,
                     wanted: list[tuple[CipherSpec, int]], *, reserve: int) -> list[DataKey]:
        """New active keys of these ciphers and versions, in one statement, each with `reserve`
        uses spent: those made (one that conflicts with a key made meanwhile, by version or as
        a second active key of its cipher, is not)."""
        kek_version = self.current_kek_version()
        clear = {version: (spec, secrets.token_bytes(spec.key_bytes)) for spec, version in wanted}
        keys = []
        for row_id, version in rows.insert(session, subject_id, kek_version, reserve, [
                (version, spec.name, self._wrap(kek_version, dek,
                                                dek_aad(subject_id, version, spec.name)))
                for version, (spec, dek) in clear.items()]):
            spec, dek = clear[version]
            key = self._data_key(subject_id, version, dek, spec=spec, row_id=row_id)
            keys.append(key)
        return keys

    def _data_key(self, subject_id: str, version: int, dek: bytes, *, spec: CipherSpec,
                  row_id: int) -> DataKey:
        return DataKey(subject_id=subject_id, version=version, cipher=spec, aead=spec.aead(dek),
                       expires=self.cache.clock() + self.cache.ttl, row_id=row_id)

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
            replaced.append((old.version, created.version))
        self.cache.evict(subject_id)
        tx.forget(session, subject_id, [old for old, _ in replaced])
        return replaced

    def for_decryption(self, session: Session, subject_id: str, version: int) -> DataKey:
        held = self._checked(session).held
        key = self.cache.key(subject_id, version) or next(
            (key for key in held.values()  # made in this transaction: not cached
             if key.subject_id == subject_id and key.version == version), None)
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
        if row.kek_version < rows.min_kek_version(session):
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
        key = self._data_key(row.subject_id, row.version, dek, spec=cipher(row.cipher),
                             row_id=row.id)
        return key

    def _wrap(self, version: int, secret: bytes, aad: bytes) -> bytes:
        try:
            return self.kek.wrap(version, secret, aad)
        except KekUnavailable as exc:
            raise Sealed(f"{exc}: new keys are wrapped under the newest recorded version, "
                         "which this process lacks") from None

    # -- KEK versions and service keys -------------------------------------------------------

    def current_kek_version(self) -> int:
        """The version new keys are wrapped under: the newest recorded in the database (as of
        this transaction's check), else this process's newest."""
        return self._kek_latest or max(self.kek.versions())

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
