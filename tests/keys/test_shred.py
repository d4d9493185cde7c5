"""Crypto-shredding: destroyed keys make earlier values undecryptable, and say why."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from app.auth.guard import Caller
from app.keys import shred
from app.keys.errors import SubjectErased
from app.keys.fields import decrypt_field, encrypt_field
from app.keys.keyring import Keyring
from app.keys.models import SubjectKey
from app.runtime import Runtime
from tests.server import LiveServer
from tests.tokens import make_token

CALLER = Caller(sub="ops-1", roles=("security",))


def write(session: Session, keyring: Keyring, subject_id: str = "subj-9") -> str:
    return encrypt_field(session, keyring, subject_id=subject_id, field="phone",
                         value="13812345678", context="rec-1")


def read(session: Session, keyring: Keyring, token: str, subject_id: str = "subj-9") -> str:
    return decrypt_field(session, keyring, subject_id=subject_id, field="phone", token=token,
                         context="rec-1")


@pytest.fixture
def hold(keyring: Keyring) -> Iterator[set[str]]:
    held: set[str] = set()

    def check(session: Session, subject_id: str) -> str | None:
        return "litigation 2026-17" if subject_id in held else None

    wired, keyring.hold_checks = keyring.hold_checks, (*(keyring.hold_checks or ()), check)
    yield held
    keyring.hold_checks = wired


def test_destroyed_key_makes_earlier_values_unreadable(runtime: Runtime, keyring: Keyring,
                                                       session: Session) -> None:
    token = write(session, keyring)
    session.commit()
    shred.destroy_subject_keys(session, keyring, caller=CALLER, subject_id="subj-9")
    session.commit()
    with pytest.raises(SubjectErased, match="erased"):
        read(session, keyring, token)
    row = session.scalars(select(SubjectKey).where(SubjectKey.subject_id == "subj-9")).one()
    assert (row.state, row.wrapped_dek) == ("destroyed", None)
    session.rollback()  # end this transaction: on SQLite it holds the write lock
    # another process, with a cold cache, cannot read it either
    from app.runtime import open_runtime

    other = open_runtime(runtime.settings)
    try:
        assert other.keyring is not None
        with other.session_factory() as fresh, pytest.raises(SubjectErased):
            read(fresh, other.keyring, token)
    finally:
        other.close()


def test_grace_period_can_be_cancelled(keyring: Keyring, session: Session) -> None:
    token = write(session, keyring)
    when = shred.destroy_subject_keys(session, keyring, caller=CALLER, subject_id="subj-9",
                                      grace=timedelta(days=7))
    assert when is not None
    assert read(session, keyring, token) == "13812345678"  # still readable during the grace
    assert shred.destroy_due(session, keyring, caller=CALLER) == []
    assert shred.cancel_destruction(session, caller=CALLER, subject_id="subj-9") == 1
    assert shred.destroy_due(session, keyring, caller=CALLER, now=when + timedelta(1)) == []
    assert read(session, keyring, token) == "13812345678"


def test_grace_period_ends_in_destruction(keyring: Keyring, session: Session) -> None:
    token = write(session, keyring)
    when = shred.destroy_subject_keys(session, keyring, caller=CALLER, subject_id="subj-9",
                                      grace=timedelta(hours=1))
    assert when is not None
    assert shred.destroy_due(session, keyring, caller=CALLER,
                             now=when + timedelta(seconds=1)) == ["subj-9"]
    with pytest.raises(SubjectErased):
        read(session, keyring, token)


def test_legal_hold_blocks_destruction(keyring: Keyring, session: Session,
                                       hold: set[str]) -> None:
    token = write(session, keyring)
    hold.add("subj-9")
    with pytest.raises(shred.LegalHoldActive, match="litigation"):
        shred.destroy_subject_keys(session, keyring, caller=CALLER, subject_id="subj-9")
    assert read(session, keyring, token) == "13812345678"
    hold.clear()
    when = shred.destroy_subject_keys(session, keyring, caller=CALLER, subject_id="subj-9",
                                      grace=timedelta(minutes=1))
    hold.add("subj-9")  # a hold placed during the grace period still wins
    assert when is not None
    assert shred.destroy_due(session, keyring, caller=CALLER,
                             now=when + timedelta(minutes=5)) == []
    assert read(session, keyring, token) == "13812345678"


def test_destruction_over_the_api_is_audited(runtime: Runtime, keyring: Keyring,
                                             live: LiveServer) -> None:
    with runtime.session_factory() as session:
        token = write(session, keyring)
        session.commit()
    client = live.client(make_token(scope="keys:admin audit:read"))
    response = client.post("/v1/keys/subjects/subj-9/destroy", json={})
    assert response.json() == {"subject_id": "subj-9", "destroyed": True, "destroy_after": None}
    assert client.post("/v1/keys/subjects/subj-9/destroy", json={}).status_code == 404
    entry = client.get("/v1/audit", params={"action": "keys.destroyed"}).json()["items"][0]
    assert entry["subject_id"] == "subj-9"
    assert entry["details"] == {"keys": 1, "versions": [1]}
    # This runtime stands for another process that still has the key cached: it must notice
    # the destruction at once, in its next transaction.
    with runtime.session_factory() as session, pytest.raises(SubjectErased):
        read(session, keyring, token)


def test_concurrent_first_uses_of_a_service_key_share_one(runtime: Runtime,
                                                         dialect: str) -> None:
    """Eight transactions asking for a service key that does not exist yet all get the same
    one: the losers of the insert race read the winner's."""
    if dialect != "postgresql":
        pytest.skip("SQLite serialises write transactions: there is no race to lose")
    assert runtime.keyring is not None
    keyring = runtime.keyring
    barrier = threading.Barrier(8)
    keys: list[bytes | str] = []

    def first_use() -> None:
        with runtime.session_factory() as session:
            session.execute(text("SELECT 1"))  # each in a transaction before the race
            barrier.wait()
            try:
                keys.append(keyring.service_key(session, "race-key"))
                session.commit()
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                keys.append(repr(exc))

    threads = [threading.Thread(target=first_use) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(keys) == 8
    assert len(set(keys)) == 1


def test_first_keys_of_two_ciphers_made_in_opposite_orders_do_not_deadlock(
        runtime: Runtime, dialect: str) -> None:
    """Two writes to a new subject, one encrypting with AES then SM4, the other SM4 then AES:
    the first keys' inserts meet on the subject's version numbers, so one waits for the other
    and reads its key; none deadlocks, and each cipher ends with one active key."""
    if dialect != "postgresql":
        pytest.skip("SQLite serialises write transactions: there is no race to lose")
    assert runtime.keyring is not None
    keyring = runtime.keyring
    for round_ in range(5):
        subject = f"cust-two-ciphers-{round_}"
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def write(order: tuple[str, str], subject: str = subject,
                  barrier: threading.Barrier = barrier, outcomes: list[str] = outcomes) -> None:
            with runtime.session_factory() as session:
                session.execute(text("SELECT 1"))
                try:
                    barrier.wait(timeout=5)
                    for cipher_name in order:
                        keyring.for_encryption(session, subject, cipher_name)
                    session.commit()
                    outcomes.append("ok")
                except Exception as exc:  # noqa: BLE001 - collected for the assertion
                    outcomes.append(repr(exc))

        threads = [threading.Thread(target=write, args=(order,)) for order in
                   (("aes-256-gcm", "sm4-gcm"), ("sm4-gcm", "aes-256-gcm"))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert outcomes == ["ok", "ok"], outcomes
        with runtime.session_factory() as session:
            active = session.scalars(select(SubjectKey.cipher).where(
                SubjectKey.subject_id == subject, SubjectKey.state == "active")).all()
        assert sorted(active) == ["aes-256-gcm", "sm4-gcm"]
