"""Races between writes, reads, destructions and rollbacks over a subject's keys, each driven
to the exact interleaving (PostgreSQL for the concurrent ones). Found by a review of the keys
made together before a write (keyring.prepare), and of its fixes; several are older than it."""

from __future__ import annotations

import threading
import time
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text, update
from sqlalchemy.orm import Session

from app.auth.guard import Caller
from app.clock import utcnow
from app.keys import rows, shred
from app.keys.errors import SubjectErased
from app.keys.fields import CiphertextInvalid, decrypt_field, encrypt_field
from app.keys.keyring import Keyring
from app.keys.models import KeySetting, SubjectKey
from app.runtime import Runtime
from tests.keys.processes import key_rows, other_keyring

AES, SM4 = "aes-256-gcm", "sm4-gcm"
OTHER = Caller.system("another-process")


def _write(runtime: Runtime, keyring: Keyring, subject: str, cipher: str = AES,
           value: str = "v") -> str:
    with runtime.session_factory() as session:
        keyring.prepare(session, subject, {cipher})
        token = encrypt_field(session, keyring, subject_id=subject, field="f", cipher=cipher,
                              value=value)
        session.commit()
    return token


def _read(runtime: Runtime, subject: str, token: str) -> str:
    """Decrypt where nothing is cached (a fresh process)."""
    with runtime.session_factory() as session:
        return decrypt_field(session, other_keyring(runtime), subject_id=subject, field="f",
                             token=token)


def _wait_for_lock_wait(runtime: Runtime, like: str = "%", timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    with runtime.engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database() AND query LIKE :like"),
                {"like": like}).scalar_one()
            conn.rollback()
            if waiting:
                return
            time.sleep(0.02)
    raise AssertionError("no backend waits on a lock")


def _pg(dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("needs concurrent write transactions (PostgreSQL)")


def _destroy(runtime: Runtime, subject: str, done: list[str]) -> None:
    assert runtime.keyring is not None
    with runtime.session_factory() as session:
        shred.destroy_subject_keys(session, runtime.keyring, caller=OTHER, subject_id=subject)
        session.commit()
    done.append("destroyed")


# -- 1. the process cache's shred epoch moves backwards after a write waited on a destruction --

def test_a_write_that_waited_on_a_destruction_does_not_let_the_destroyed_key_decrypt(
        runtime: Runtime, dialect: str) -> None:
    """P is one process. A (a read) loaded the victim's key row before the destruction
    committed; T (a write to the victim) read epoch E in the statement that then waited for the
    destruction's lock; R (a read) began after the destruction committed and saw E+1.
    T's follow(E) runs after R's follow(E+1). The cache must not go back to E: else A's key
    (destroyed) would be kept, and R, which began after the destruction, would decrypt."""
    _pg(dialect)
    process = other_keyring(runtime)
    token = _write(runtime, process, "victim", value="erase me")
    bystander = _write(runtime, process, "bystander", value="b")
    process.cache.evict("victim")  # as after its time ran out: A loads it from its row

    gates: dict[str, dict[str, Any]] = {
        "A": {"match": lambda s: "FROM subject_keys" in s and " FOR " not in s},
        "T": {"match": lambda s: "FOR KEY SHARE" in s},  # its lock (new: with the epoch)
    }
    for gate in gates.values():
        gate.update(fired=False, reached=threading.Event(), release=threading.Event())

    def after(_c: Any, _cur: Any, statement: str, *_a: Any) -> None:
        gate = gates.get(threading.current_thread().name)
        if gate is not None and not gate["fired"] and gate["match"](statement):
            gate["fired"] = True
            gate["reached"].set()
            gate["release"].wait(30)

    results: dict[str, Any] = {}

    def run_a() -> None:
        with runtime.session_factory() as session:
            try:
                results["A"] = process.for_decryption(session, "victim", 1)
            except Exception as exc:  # noqa: BLE001
                results["A"] = exc

    def run_t() -> None:
        with runtime.session_factory() as session:
            try:
                process.prepare(session, "victim", {None})
                encrypt_field(session, process, subject_id="victim", field="f", value="new")
                session.commit()
                results["T"] = "ok"
            except Exception as exc:  # noqa: BLE001
                results["T"] = exc

    event.listen(runtime.engine, "after_cursor_execute", after)
    try:
        a = threading.Thread(target=run_a, name="A")
        a.start()
        assert gates["A"]["reached"].wait(10)  # A has the row (active), not yet kept
        destroyer = runtime.session_factory()
        assert runtime.keyring is not None
        shred.destroy_subject_keys(destroyer, runtime.keyring, caller=OTHER,
                                   subject_id="victim")  # locked and changed, not committed
        t = threading.Thread(target=run_t, name="T")
        t.start()
        _wait_for_lock_wait(runtime, "%FOR KEY SHARE%")  # T's lock waits (new: epoch E read)
        destroyer.commit()
        destroyer.close()
        assert gates["T"]["reached"].wait(10)  # T's lock returned; its follow() is next
        with runtime.session_factory() as reader:  # R: begins after the destruction
            assert decrypt_field(reader, process, subject_id="bystander", field="f",
                                 token=bystander) == "b"
            after_r = process.cache.epoch
            gates["T"]["release"].set()
            t.join(30)
            after_t = process.cache.epoch
            gates["A"]["release"].set()
            a.join(30)
            assert results["T"] == "ok", results
            assert after_t == after_r  # never back to the epoch before the destruction
            with pytest.raises(SubjectErased):  # R began after the destruction committed
                decrypt_field(reader, process, subject_id="victim", field="f", token=token)
    finally:
        for gate in gates.values():
            gate["release"].set()
        event.remove(runtime.engine, "after_cursor_execute", after)


# -- 2. a destruction that waited for a write misses the keys that write (or a rotation) made --

def _commit_while_destroyed(runtime: Runtime, session: Session, subject: str) -> None:
    """Commit `session` while a destruction of the subject's keys waits for its locks."""
    done: list[str] = []
    destroyer = threading.Thread(target=_destroy, args=(runtime, subject, done))
    destroyer.start()
    _wait_for_lock_wait(runtime)
    session.commit()
    destroyer.join(30)
    assert done == ["destroyed"]


def test_a_destruction_destroys_the_key_a_write_it_waited_for_made(
        runtime: Runtime, dialect: str) -> None:
    """keyring.py: "a destruction waits for the write to commit (and then destroys what it
    wrote)". The subject has an AES key; a write (which locked it) makes its first SM4 key
    and encrypts with it; the destruction waits for the write. Its first look could not see
    the SM4 key: it looks again, so that key is destroyed too and the value no longer opens."""
    _pg(dialect)
    process = other_keyring(runtime)
    _write(runtime, process, "mixed", AES)
    with runtime.session_factory() as session:
        process.prepare(session, "mixed", {AES, SM4})
        token = encrypt_field(session, process, subject_id="mixed", field="f", cipher=SM4,
                              value="written before the erasure")
        _commit_while_destroyed(runtime, session, "mixed")
    assert all(state == "destroyed" for _, _, state in key_rows(runtime, "mixed"))
    with pytest.raises(SubjectErased):
        _read(runtime, "mixed", token)


def test_a_destruction_destroys_the_keys_a_rotation_it_waited_for_made(
        runtime: Runtime, dialect: str) -> None:
    """The same with Keyring.rotate (a DEK rotation job re-encrypts every stored value under
    the new keys in its transaction): the new keys are destroyed too, not only the retired."""
    _pg(dialect)
    assert runtime.keyring is not None
    keyring = runtime.keyring
    _write(runtime, keyring, "rotated", AES)
    with runtime.session_factory() as session:
        keyring.rotate(session, "rotated")
        token = encrypt_field(session, keyring, subject_id="rotated", field="f",
                              value="re-encrypted by the rotation")
        _commit_while_destroyed(runtime, session, "rotated")
    with pytest.raises(SubjectErased):
        _read(runtime, "rotated", token)


# -- 3. keys made in a transaction that rolls back stay cached (and "checked") ------------------

def test_a_key_made_in_a_rolled_back_savepoint_is_not_used(runtime: Runtime) -> None:
    """batch.create_many runs each item in a SAVEPOINT and rolls it back on a GatewayError
    (prepare's own Conflict, KeyDamaged/KeyRetired/Sealed while reserving another cipher's key
    after the missing one was inserted, ServiceUnavailable for a hash field...). The next item
    of the same subject must not encrypt under the rolled-back key, whose row never commits."""
    process = other_keyring(runtime)
    with runtime.session_factory() as session:
        item = session.begin_nested()
        process.prepare(session, "phantom", {None})
        encrypt_field(session, process, subject_id="phantom", field="f", value="item 1")
        item.rollback()  # item 1 refused after its keys were made
        token = encrypt_field(session, process, subject_id="phantom", field="f",
                              value="item 2")
        session.commit()
    assert _read(runtime, "phantom", token) == "item 2"


def test_a_key_made_in_a_rolled_back_transaction_is_not_used(runtime: Runtime) -> None:
    """A write makes the subject's first key and is rolled back (busy, audit failure, client
    gone...); another process makes the subject's key of the same version; this process must
    then encrypt with that one, not with its own never-committed DEK."""
    process, other = other_keyring(runtime), other_keyring(runtime)
    with runtime.session_factory() as session:
        process.prepare(session, "ghost", {None})
        encrypt_field(session, process, subject_id="ghost", field="f", value="lost write")
        session.rollback()
    _write(runtime, other, "ghost", value="written elsewhere")
    token = _write(runtime, process, "ghost", value="written here")
    try:
        assert _read(runtime, "ghost", token) == "written here"
    except CiphertextInvalid as exc:
        pytest.fail(f"the stored value never opens: {exc}")


# -- 4. prepare's ordering holds only while the cache keeps what it skipped --------------------

def test_prepared_writes_do_not_deadlock_when_a_cached_key_expires_meanwhile(
        runtime: Runtime, dialect: str) -> None:
    """W1's process has the AES key cached, so prepare reserves only SM4 (row locked). W2, in
    another process, reserves AES then waits for SM4. W1's cached AES key runs out of time
    before W1 encrypts with it (or its budget runs out, a destruction elsewhere clears the
    cache, LRU pressure, another transaction's evict). W1 must not then reserve AES after SM4:
    it holds the key prepare found for its whole transaction."""
    _pg(dialect)
    now = [1000.0]
    p1 = other_keyring(runtime, clock=lambda: now[0])
    p2 = other_keyring(runtime)
    _write(runtime, p1, "two", AES)           # cached in p1
    _write(runtime, other_keyring(runtime), "two", SM4)  # made elsewhere: not cached in p1
    outcomes: dict[str, str] = {}
    with runtime.session_factory() as w1:
        p1.prepare(w1, "two", {AES, SM4})  # reserves SM4 only

        def w2() -> None:
            with runtime.session_factory() as session:
                try:
                    p2.prepare(session, "two", {AES, SM4})
                    session.commit()
                    outcomes["W2"] = "ok"
                except Exception as exc:  # noqa: BLE001
                    outcomes["W2"] = repr(exc)[:120]

        thread = threading.Thread(target=w2)
        thread.start()
        _wait_for_lock_wait(runtime)
        now[0] += 61  # the TTL runs out between prepare and the encryption
        try:
            encrypt_field(w1, p1, subject_id="two", field="f", cipher=AES, value="x")
            w1.commit()
            outcomes["W1"] = "ok"
        except Exception as exc:  # noqa: BLE001
            outcomes["W1"] = repr(exc)[:120]
        thread.join(30)
    assert outcomes == {"W1": "ok", "W2": "ok"}


# -- 5. prepare's loop: keys made in its last round still end in Conflict ----------------------

def test_prepare_succeeding_in_its_last_round_does_not_refuse(
        runtime: Runtime, monkeypatch: pytest.MonkeyPatch) -> None:
    """Seven lost races (each insert made nothing), then the eighth round makes the key: that
    is a success, not a Conflict."""
    process = other_keyring(runtime)
    real = Keyring._insert_keys
    calls = [0]

    def losing(self: Keyring, *args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        return [] if calls[0] < 8 else real(self, *args, **kwargs)

    monkeypatch.setattr(Keyring, "_insert_keys", losing)
    with runtime.session_factory() as session:
        process.prepare(session, "unlucky", {None})
        session.commit()
    assert calls[0] == 8


# -- a transaction's own keys, destructions listed as due, a restored database --------------

def test_a_transaction_that_destroys_keys_then_writes_uses_a_new_key(runtime: Runtime) -> None:
    """A transaction encrypts for S, destroys S's keys, then encrypts for S again: the key it
    held before the destruction is not used."""
    process = runtime.keyring
    assert process is not None
    _write(runtime, process, "s1", value="before")
    with runtime.session_factory() as session:
        process.prepare(session, "s1", {None})
        encrypt_field(session, process, subject_id="s1", field="f", value="x")
        shred.destroy_subject_keys(session, process, caller=OTHER, subject_id="s1")
        process.prepare(session, "s1", {None})
        token = encrypt_field(session, process, subject_id="s1", field="f", value="after")
        session.commit()
    assert _read(runtime, "s1", token) == "after", key_rows(runtime, "s1")


def test_a_destruction_cancelled_while_due_ones_are_listed_does_not_happen(
        runtime: Runtime, dialect: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """destroy_due lists due subjects without a lock; a cancellation that commits before it
    locks the subject's keys is seen once they are locked."""
    _pg(dialect)
    keyring = runtime.keyring
    assert keyring is not None
    _write(runtime, keyring, "kept")
    with runtime.session_factory() as session:
        shred.destroy_subject_keys(session, keyring, caller=OTHER, subject_id="kept",
                                   grace=timedelta(seconds=1))
        session.commit()
    real = shred._live_keys
    cancelled: list[str] = []

    def cancel_meanwhile(session: Session, subject_id: str) -> list[SubjectKey]:
        if not cancelled:  # between the listing and the lock
            cancelled.append(subject_id)
            with runtime.session_factory() as other:
                assert shred.cancel_destruction(other, caller=OTHER, subject_id=subject_id) == 1
                other.commit()
        return real(session, subject_id)

    monkeypatch.setattr(shred, "_live_keys", cancel_meanwhile)
    with runtime.session_factory() as session:
        done = shred.destroy_due(session, keyring, caller=OTHER,
                                 now=utcnow() + timedelta(seconds=5))
        session.commit()
    assert cancelled == ["kept"]
    assert done == []
    assert all(state != "destroyed" for _, _, state in key_rows(runtime, "kept"))


def test_after_a_restore_that_lowers_the_shred_epoch_keys_are_cached_again(
        runtime: Runtime) -> None:
    """The database's shred epoch goes down (restored from a backup under a running process):
    transactions that ask after the cache moved on follow it, and keys are cached again (a
    stale read of an older epoch, by a transaction that asked earlier, is the first test's)."""
    process = other_keyring(runtime)
    assert runtime.keyring is not None
    for s in ("x1", "x2"):  # two destructions: epoch 2
        _write(runtime, process, s)
        with runtime.session_factory() as session:
            shred.destroy_subject_keys(session, runtime.keyring, caller=OTHER, subject_id=s)
            session.commit()
    _write(runtime, process, "hot")
    assert process.cache.epoch == 2
    with runtime.session_factory() as session:  # "restore": the epoch goes back to 0
        session.execute(update(KeySetting).where(
            KeySetting.name == rows.SHRED_EPOCH_SETTING).values(value=0))
        session.commit()
    for _ in range(3):
        _write(runtime, process, "hot2")
    with runtime.session_factory() as session:
        uses = session.scalar(select(SubjectKey.uses).where(SubjectKey.subject_id == "hot2"))
    assert process.cache.active("hot2", AES) is not None, (uses, process.cache.epoch)


def test_a_key_made_in_a_rolled_back_transaction_and_read_back_is_not_cached(
        runtime: Runtime) -> None:
    """A key this transaction made and then decrypted with comes from the transaction, not its
    own uncommitted row (which would be cached at once): the transaction rolls back, another
    process makes the same version with other material, and this process reads theirs."""
    process, other = other_keyring(runtime), other_keyring(runtime)
    with runtime.session_factory() as session:
        process.prepare(session, "echo", {None})
        token = encrypt_field(session, process, subject_id="echo", field="f", value="lost")
        assert decrypt_field(session, process, subject_id="echo", field="f",
                             token=token) == "lost"
        session.rollback()
    theirs = _write(runtime, other, "echo", value="theirs")
    with runtime.session_factory() as session:
        assert decrypt_field(session, process, subject_id="echo", field="f",
                             token=theirs) == "theirs"
