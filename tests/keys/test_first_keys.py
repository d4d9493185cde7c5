"""A subject's first keys: made together before a write encrypts, and raced for safely."""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI
from sqlalchemy import event

from app.config import Settings
from app.keys.fields import decrypt_field, encrypt_field
from app.keys.keyring import Keyring
from app.main import create_app
from app.runtime import Runtime
from tests.keys.processes import key_rows, other_keyring
from tests.server import LiveServer
from tests.tokens import make_token

REPO = Path(__file__).resolve().parents[2]

BOTH: set[str | None] = {"aes-256-gcm", "sm4-gcm"}


@contextmanager
def statements(runtime: Runtime) -> Iterator[list[str]]:
    """Every statement the runtime's engine sends meanwhile (not a transaction's BEGIN)."""
    sent: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not statement.startswith("BEGIN"):  # SQLite's, sent as a statement
            sent.append(" ".join(statement.split()))

    event.listen(runtime.engine, "before_cursor_execute", seen)
    try:
        yield sent
    finally:
        event.remove(runtime.engine, "before_cursor_execute", seen)


def test_a_new_subjects_keys_of_two_ciphers_are_made_in_one_statement(
        runtime: Runtime) -> None:
    """The keyring's state and the subject's (no) keys in one statement, both keys in a
    second; encrypting with either then sends nothing more."""
    keyring = other_keyring(runtime)
    with runtime.session_factory() as session:  # its first transaction checks the KEK
        keyring.prepare(session, "someone-else", BOTH)
        session.commit()
    with runtime.session_factory() as session, statements(runtime) as sent:
        keyring.prepare(session, "first-keys", BOTH)
        prepared = list(sent)
        tokens = {name: encrypt_field(session, keyring, subject_id="first-keys", field="f",
                                      cipher=name, value=f"by {name}") for name in BOTH}
        assert sent == prepared
        session.commit()
    assert len(prepared) == 2, "\n".join(prepared)
    assert "subject_keys" in prepared[0]
    assert "key_settings" in prepared[0]
    assert prepared[1].startswith("INSERT INTO subject_keys")
    assert key_rows(runtime, "first-keys") == [(1, "aes-256-gcm", "active"),
                                            (2, "sm4-gcm", "active")]
    reader = other_keyring(runtime)
    with runtime.session_factory() as session:
        for name, token in tokens.items():
            assert decrypt_field(session, reader, subject_id="first-keys", field="f",
                                 token=token) == f"by {name}"


def test_a_write_that_encrypts_nothing_sends_nothing_forkey_rows(runtime: Runtime) -> None:
    keyring = other_keyring(runtime)
    with runtime.session_factory() as session, statements(runtime) as sent:
        keyring.prepare(session, "no-keys", set())
    assert sent == []
    assert key_rows(runtime, "no-keys") == []


def test_a_subject_with_a_key_gets_only_the_missing_one(runtime: Runtime) -> None:
    keyring = other_keyring(runtime)
    with runtime.session_factory() as session:
        encrypt_field(session, keyring, subject_id="has-aes", field="f", value="x")
        session.commit()
    other = other_keyring(runtime)  # no cached key: it learns of the AES key from the lock
    with runtime.session_factory() as session:
        other.prepare(session, "has-aes", BOTH)
        for name in BOTH:
            encrypt_field(session, other, subject_id="has-aes", field="f", cipher=name,
                          value="y")
        session.commit()
    assert key_rows(runtime, "has-aes") == [(1, "aes-256-gcm", "active"),
                                         (2, "sm4-gcm", "active")]


def test_writes_racing_for_a_new_subjects_first_keys_all_succeed(runtime: Runtime,
                                                                  dialect: str) -> None:
    """Writes of records that encrypt with both ciphers (in either field order: each makes
    its missing keys first, as storage.protect_values does) race single encryptions with
    either cipher, each as a process of its own: every write succeeds, each cipher ends with
    one active key, and every value decrypts. Without making the keys first, a write holding
    one key's row for its uses and waiting to insert the other deadlocked with one doing the
    opposite (found by this test)."""
    if dialect != "postgresql":
        pytest.skip("SQLite serialises write transactions: there is no race to lose")
    aes, sm4 = "aes-256-gcm", "sm4-gcm"
    plans: list[tuple[bool, list[str]]] = [(True, [aes, sm4]), (True, [sm4, aes]),
                                           (True, [aes, sm4]), (False, [sm4]),
                                           (True, [sm4, aes]), (False, [aes])]
    for round_ in range(6):
        subject = f"racing-first-keys-{round_}"
        barrier = threading.Barrier(len(plans))
        outcomes: list[str] = []
        tokens: list[tuple[Keyring, str, str]] = []

        def write(prepared: bool, ciphers: list[str], subject: str = subject,
                  barrier: threading.Barrier = barrier, outcomes: list[str] = outcomes,
                  tokens: list[tuple[Keyring, str, str]] = tokens) -> None:
            keyring = other_keyring(runtime)
            try:
                with runtime.session_factory() as session:
                    barrier.wait(timeout=10)
                    if prepared:
                        keyring.prepare(session, subject, set(ciphers))
                    made = [(keyring, name, encrypt_field(
                        session, keyring, subject_id=subject, field="f", cipher=name,
                        value=name)) for name in ciphers]
                    session.commit()
                tokens.extend(made)
                outcomes.append("ok")
            except Exception as exc:  # noqa: BLE001 - collected for the assertion
                outcomes.append(repr(exc))

        threads = [threading.Thread(target=write, args=plan) for plan in plans]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert outcomes == ["ok"] * len(plans), outcomes
        active = [cipher for _, cipher, state in key_rows(runtime, subject) if state == "active"]
        assert sorted(active) == [aes, sm4]
        with runtime.session_factory() as session:
            for keyring, name, token in tokens:
                assert decrypt_field(session, keyring, subject_id=subject, field="f",
                                     token=token) == name


def test_an_idempotent_write_prepares_the_key_that_seals_its_response(
        tmp_path: Path, make_settings: Callable[..., Settings],
        start_server: Callable[[FastAPI], LiveServer]) -> None:
    """A write with an `Idempotency-Key` seals its response under the subject's key with the
    deployment's cipher. When none of the record's fields uses that cipher, its key is still
    made with the fields' keys in one statement before any key is used (`Keys.sealed`), not
    after them: making it last would take one key's row and then wait for another's, the
    order a racing write can take the other way round."""
    policies = tmp_path / "policies"
    shutil.copytree(REPO / "policies", policies)
    types = policies / "record_types.yaml"
    marker = '        description: {en: "Full name", zh: "姓名"}\n        protection: encrypt\n'
    text = types.read_text(encoding="utf-8")
    assert marker in text
    types.write_text(text.replace(marker, marker + "        cipher: sm4-gcm\n"), encoding="utf-8")
    app = create_app(make_settings(policy_dir=policies))  # the deployment's cipher: AES
    live = start_server(app)
    client = live.client(make_token(scope="records:write"))
    record = {"subject_id": "sealed-1", "purpose": "account_management",
              "record_type": "customer_profile",
              "data": {"name": "张伟", "cn_resident_id": "11010519491231002X"}}
    runtime: Runtime = app.state.runtime
    with statements(runtime) as sent:
        written = client.post("/v1/records", json=record, headers={"Idempotency-Key": "k-1"})
    assert written.status_code == 201, written.text
    inserts = [s for s in sent if s.startswith("INSERT INTO subject_keys")]
    assert len(inserts) == 1, "\n".join(inserts)
    assert key_rows(runtime, "sealed-1") == [(1, "aes-256-gcm", "active"),
                                          (2, "sm4-gcm", "active")]
    again = client.post("/v1/records", json=record, headers={"Idempotency-Key": "k-1"})
    assert (again.status_code, again.json()) == (201, written.json())  # the sealed answer
