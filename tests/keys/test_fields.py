"""Field encryption: binding, tampering, nonces, blind indexes, nothing in clear at rest."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import MetaData, select
from sqlalchemy.orm import Session

from app.config import Settings
from app.errors import GatewayError
from app.keys.datakey import dek_aad
from app.keys.fields import CiphertextInvalid, blind_index, decrypt_field, encrypt_field
from app.keys.keyring import Keyring
from app.keys.models import SubjectKey
from app.runtime import Runtime, open_runtime

VALUE = "13812345678"


def protect(session: Session, keyring: Keyring, **overrides: str) -> str:
    args = {"subject_id": "subj-1", "field": "phone", "context": "rec-1", "value": VALUE,
            **overrides}
    return encrypt_field(session, keyring, **args)


def test_round_trip(session: Session, keyring: Keyring) -> None:
    token = protect(session, keyring)
    assert token.startswith("pgw1.")
    assert VALUE not in token
    assert decrypt_field(session, keyring, subject_id="subj-1", field="phone", context="rec-1",
                         token=token) == VALUE


@pytest.mark.parametrize(("subject_id", "field", "context"), [
    ("subj-2", "phone", "rec-1"),  # another subject
    ("subj-1", "email", "rec-1"),  # another field
    ("subj-1", "phone", "rec-2"),  # another record
])
def test_moved_ciphertext_fails(session: Session, keyring: Keyring, subject_id: str,
                                field: str, context: str) -> None:
    token = protect(session, keyring)
    protect(session, keyring, subject_id="subj-2")  # the other subject has a key too
    with pytest.raises(CiphertextInvalid):
        decrypt_field(session, keyring, subject_id=subject_id, field=field, context=context,
                      token=token)


def test_flipped_bit_fails(session: Session, keyring: Keyring) -> None:
    token = protect(session, keyring)
    raw = bytearray(base64.b64decode(token[5:]))
    raw[-1] ^= 0x01
    tampered = "pgw1." + base64.b64encode(bytes(raw)).decode()
    with pytest.raises(CiphertextInvalid):
        decrypt_field(session, keyring, subject_id="subj-1", field="phone", context="rec-1",
                      token=tampered)


@pytest.mark.parametrize("token", ["plain", "pgw1.!!!", "pgw1.AAAA"])
def test_malformed_tokens(session: Session, keyring: Keyring, token: str) -> None:
    with pytest.raises(CiphertextInvalid):
        decrypt_field(session, keyring, subject_id="subj-1", field="phone", token=token)


def test_nonces_are_unique_over_100000_encryptions(session: Session, keyring: Keyring) -> None:
    nonces = set()
    for _ in range(100_000):
        nonces.add(base64.b64decode(protect(session, keyring)[5:])[5:17])
    assert len(nonces) == 100_000
    uses = session.scalar(select(SubjectKey.uses).where(SubjectKey.subject_id == "subj-1"))
    assert uses is not None
    assert uses >= 100_000  # every encryption is counted (reserved in blocks)


def test_key_is_rotated_before_its_use_bound(runtime: Runtime) -> None:
    assert runtime.keyring is not None
    keyring = Keyring(kek=runtime.keyring.kek, cipher_name="aes-256-gcm", cache_size=10,
                      ttl=60, rotate_after=10_000)
    with runtime.session_factory() as session:
        tokens = [protect(session, keyring) for _ in range(25_000)]
        versions = sorted({v for (v,) in session.execute(
            select(SubjectKey.version).where(SubjectKey.subject_id == "subj-1"))})
        assert versions == [1, 2, 3]
        # values written under the retired keys still decrypt
        for token in (tokens[0], tokens[12_000], tokens[-1]):
            assert decrypt_field(session, keyring, subject_id="subj-1", field="phone",
                                 context="rec-1", token=token) == VALUE


@pytest.mark.parametrize(("kind", "a", "b"), [
    ("email", "Jane.Doe@Example.com ", "jane.doe@example.com"),
    ("phone", "138-1234-5678", "+86 138 1234 5678"),
    ("cn_resident_id", "11010519491231002x", "11010519491231002X"),
])
def test_blind_index_normalises(kind: str, a: str, b: str) -> None:
    key = b"k" * 32
    assert blind_index(key, kind, a) == blind_index(key, kind, b)
    assert blind_index(key, kind, a) != blind_index(b"j" * 32, kind, a)
    assert blind_index(key, kind, a) != blind_index(key, "other", a)


def test_blind_index_key_is_a_wrapped_service_key(session: Session, keyring: Keyring) -> None:
    first = keyring.service_key(session, "blind_index")
    assert first == keyring.service_key(session, "blind_index")
    assert len(first) == 32


def test_sm4_deployment(make_settings: Callable[..., Settings]) -> None:
    runtime = open_runtime(make_settings(cipher="sm4"))
    try:
        assert runtime.keyring is not None
        with runtime.session_factory() as session:
            token = protect(session, runtime.keyring)
            assert base64.b64decode(token[5:])[0] == 2  # SM4-GCM code
            assert decrypt_field(session, runtime.keyring, subject_id="subj-1", field="phone",
                                 context="rec-1", token=token) == VALUE
    finally:
        runtime.close()


def dump(runtime: Runtime) -> bytes:
    """Every row of every table, as the database would hand it to anyone who reads it."""
    metadata = MetaData()
    metadata.reflect(runtime.engine)
    chunks: list[bytes] = []
    with runtime.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(table.select()):
                chunks.extend(bytes(v).hex().encode() if isinstance(v, bytes | memoryview)
                              else str(v).encode() for v in row)
    if runtime.engine.dialect.name == "sqlite":  # and the files themselves, log included
        database = Path(str(runtime.engine.url.database))
        for path in (database, database.with_name(database.name + "-wal")):
            if path.exists():
                chunks.append(path.read_bytes())
    return b"\n".join(chunks)


def test_nothing_in_clear_at_rest(runtime: Runtime, keyring: Keyring) -> None:
    secrets = ["13800138000", "zhang.wei@example.cn", "11010519491231002X"]
    with runtime.session_factory() as session:
        for i, value in enumerate(secrets):
            protect(session, keyring, value=value, field=f"f{i}")
        row = session.scalars(select(SubjectKey)).one()
        assert row.wrapped_dek is not None
        dek = keyring.kek.unwrap(row.kek_version, row.wrapped_dek,
                                 dek_aad(row.subject_id, row.version, row.cipher))
        session.commit()
    raw = dump(runtime)
    for value in secrets:
        assert value.encode() not in raw
    assert dek not in raw
    assert dek.hex().encode() not in raw
    assert row.wrapped_dek.hex().encode() in raw  # the dump is real: it has the wrapped key


def test_errors_are_gateway_errors() -> None:
    assert issubclass(CiphertextInvalid, GatewayError)


def test_per_field_cipher_choice(session: Session, keyring: Keyring) -> None:
    aes = protect(session, keyring)
    sm4 = encrypt_field(session, keyring, subject_id="subj-1", field="id_number", value="X",
                        cipher="sm4")
    assert base64.b64decode(aes[5:])[0] == 1
    assert base64.b64decode(sm4[5:])[0] == 2
    assert decrypt_field(session, keyring, subject_id="subj-1", field="id_number",
                         token=sm4) == "X"
    ciphers = set(session.scalars(select(SubjectKey.cipher)
                                  .where(SubjectKey.subject_id == "subj-1")))
    assert ciphers == {"aes-256-gcm", "sm4-gcm"}


def test_nonces_are_not_shared_between_threads_or_with_forked_children() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from app.keys import fields

    fields._nonce()  # the pool now holds the rest of a block
    reader, writer = os.pipe()
    child = os.fork()
    if child == 0:  # the child reports the nonce it would use next
        os.write(writer, fields._nonce())
        os._exit(0)
    os.waitpid(child, 0)
    in_child = os.read(reader, 64)
    os.close(reader)
    os.close(writer)
    assert len(in_child) == 12
    assert in_child != fields._nonce()
    with ThreadPoolExecutor(4) as pool:
        taken = list(pool.map(lambda _: [fields._nonce() for _ in range(600)], range(4)))
    everything = [nonce for batch in taken for nonce in batch]
    assert len(set(everything)) == len(everything) == 2400


def _first_writes_at_once(runtime: Runtime, ciphers: list[str], subject: str,
                          value: str) -> tuple[list[Keyring], list[str]]:
    """One encryption per cipher for a new subject, each in its own transaction and with its
    own key cache (as separate processes), all let go at the same moment."""
    from concurrent.futures import ThreadPoolExecutor
    from threading import Barrier

    assert runtime.keyring is not None
    keyrings = [Keyring(kek=runtime.keyring.kek, cipher_name=name, cache_size=10, ttl=60)
                for name in ciphers]
    barrier = Barrier(len(keyrings))

    def first_write(keyring: Keyring) -> str:
        with runtime.session_factory() as session:
            barrier.wait()
            token = encrypt_field(session, keyring, subject_id=subject, field="email",
                                  value=value)
            session.commit()
            return token

    with ThreadPoolExecutor(len(keyrings)) as pool:
        return keyrings, list(pool.map(first_write, keyrings))


def test_concurrent_first_writes_for_a_subject_share_one_key(runtime: Runtime) -> None:
    """Transactions that all find no key for a new subject: one creates it, the others use
    that one instead of failing on the unique (subject, version)."""
    keyrings, tokens = _first_writes_at_once(runtime, ["aes-256-gcm"] * 4, "new-subj",
                                             "a@example.com")
    with runtime.session_factory() as session:
        versions = session.scalars(select(SubjectKey.version)
                                   .where(SubjectKey.subject_id == "new-subj")).all()
        assert versions == [1]
        for token in tokens:
            assert decrypt_field(session, keyrings[0], subject_id="new-subj", field="email",
                                 token=token) == "a@example.com"


def test_concurrent_first_keys_of_two_ciphers_take_two_versions(runtime: Runtime) -> None:
    """An AES and an SM4 key made at the same moment for a new subject both want version 1:
    the one that loses takes version 2 instead of failing."""
    keyrings, tokens = _first_writes_at_once(runtime, ["aes-256-gcm", "sm4-gcm"] * 2,
                                             "two-ciphers", "b@example.com")
    with runtime.session_factory() as session:
        keys = session.execute(select(SubjectKey.version, SubjectKey.cipher)
                               .where(SubjectKey.subject_id == "two-ciphers")
                               .order_by(SubjectKey.version)).all()
        assert sorted(cipher for _, cipher in keys) == ["aes-256-gcm", "sm4-gcm"]
        assert [version for version, _ in keys] == [1, 2]
        for token, keyring in zip(tokens, keyrings, strict=True):
            assert decrypt_field(session, keyring, subject_id="two-ciphers", field="email",
                                 token=token) == "b@example.com"
