"""Rotation: KEK rotation killed at random points resumes to every DEK rewrapped exactly once."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import time

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.auth.guard import Caller
from app.config import Settings
from app.errors import Conflict
from app.keys import rotation
from app.keys.errors import KeyRetired
from app.keys.fields import decrypt_field, encrypt_field, token_version
from app.keys.keyring import Keyring
from app.keys.models import KekVersion, KeyRotation, SubjectKey
from app.runtime import Runtime, open_runtime
from tests.server import PGW

CALLER = Caller.system("test")
SUBJECTS = 400


def make_keys(runtime: Runtime, count: int) -> dict[str, str]:
    assert runtime.keyring is not None
    tokens = {}
    with runtime.session_factory() as session:
        for i in range(count):
            tokens[f"s{i}"] = encrypt_field(session, runtime.keyring, subject_id=f"s{i}",
                                            field="email", value=f"user{i}@example.com")
        session.commit()
    return tokens


def env(settings: Settings) -> dict[str, str]:
    return {**os.environ, "PGW_DATABASE_URL": settings.sqlalchemy_url,
            "PGW_DATA_DIR": str(settings.data_dir), "PGW_POLICY_DIR": str(settings.policy_dir)}


def test_kek_rotation_killed_at_random_points_resumes(settings: Settings,
                                                      runtime: Runtime) -> None:
    tokens = make_keys(runtime, SUBJECTS)
    rng = random.Random(7)
    kills = 0
    for _ in range(3):  # start and kill a rotation three times, at random points inside it
        process = subprocess.Popen([PGW, "keys", "rotate-kek", "--batch-size", "3"],
                                   env=env(settings), stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE)
        assert process.stderr is not None
        updates, wanted = 0, rng.randint(2, 20)
        while updates < wanted and (char := process.stderr.read(1)):
            updates += char == b"\r"  # one progress update per committed batch
        time.sleep(rng.uniform(0, 0.02))  # somewhere inside the next batch
        if process.poll() is not None:
            break  # it finished before the kill: starting again would begin a new rotation
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
        kills += 1
    assert kills >= 1, "no run was interrupted: the test did not test resumption"
    with runtime.session_factory() as session:
        running = session.scalar(select(KeyRotation).where(KeyRotation.status == "running"))
    if running is not None:  # resume the interrupted rotation to its end
        finished = subprocess.run([PGW, "keys", "rotate-kek", "--batch-size", "3"],
                                  env=env(settings), capture_output=True, text=True,
                                  timeout=300, check=False)
        assert finished.returncode == 0, finished.stderr

    fresh = open_runtime(settings)  # new process state: the new KEK version from disk
    try:
        assert fresh.keyring is not None
        with fresh.session_factory() as session:
            versions = set(session.scalars(select(SubjectKey.kek_version)))
            done = session.scalars(select(KeyRotation)).all()
            assert versions == {2}
            assert [(r.kind, r.status, r.processed, r.total) for r in done] == [
                ("kek", "done", SUBJECTS, SUBJECTS)]  # each DEK rewrapped exactly once
            for subject, token in tokens.items():
                i = subject[1:]
                assert decrypt_field(session, fresh.keyring, subject_id=subject, field="email",
                                     token=token) == f"user{i}@example.com"
    finally:
        fresh.close()


def test_a_rotation_job_run_again_after_the_end_starts_no_new_version(runtime: Runtime,
                                                                     keyring: Keyring) -> None:
    make_keys(runtime, 2)
    with runtime.transaction() as session:
        started = rotation.start_kek_rotation(session, keyring, caller=CALLER)
        rotation_id = started.id
        job_id = rotation.enqueue_rotation(session, started, caller=CALLER)
        assert rotation.enqueue_rotation(session, started, caller=CALLER) == job_id

    def run() -> KeyRotation:
        return rotation.run_kek_rotation(runtime.session_factory, keyring, caller=CALLER,
                                         rotation_id=rotation_id)

    done = run()
    assert (done.status, done.processed) == ("done", 2)
    # a worker that died after the rotation's end, before its job was marked done, runs it again
    again = run()
    assert (again.id, again.status, again.target_version) == (rotation_id, "done", 2)
    with runtime.session_factory() as session:
        assert list(session.scalars(select(KekVersion.version))) == [1, 2]


def test_retiring_old_kek_versions(runtime: Runtime, keyring: Keyring) -> None:
    tokens = make_keys(runtime, 3)
    with runtime.session_factory() as session:
        rotation.start_kek_rotation(session, keyring, caller=CALLER)
        with pytest.raises(Conflict, match="still wrapped"):
            rotation.retire_kek_versions(session, caller=CALLER, below=2)
        session.commit()
    rotation.run_kek_rotation(runtime.session_factory, keyring, caller=CALLER, batch_size=2)
    with runtime.session_factory() as session:
        rotation.retire_kek_versions(session, caller=CALLER, below=2)
        session.commit()
        keyring.cache.evict("s0")
        assert decrypt_field(session, keyring, subject_id="s0", field="email",
                             token=tokens["s0"]) == "user0@example.com"
        # a key left under a retired version (as from an old backup) is refused
        row = session.scalars(select(SubjectKey).where(SubjectKey.subject_id == "s1")).one()
        row.kek_version = 1
        session.flush()
        keyring.cache.evict("s1")
        with pytest.raises(KeyRetired):
            decrypt_field(session, keyring, subject_id="s1", field="email", token=tokens["s1"])


def test_dek_rotation_keeps_old_values_readable(runtime: Runtime, keyring: Keyring,
                                                session: Session) -> None:
    old = encrypt_field(session, keyring, subject_id="s1", field="email", value="a@b.cn")
    assert rotation.rotate_subject_dek(session, keyring, caller=CALLER, subject_id="s1") == 2
    new = encrypt_field(session, keyring, subject_id="s1", field="email", value="a@b.cn")
    assert old != new
    states = dict(session.execute(select(SubjectKey.version, SubjectKey.state)
                                  .where(SubjectKey.subject_id == "s1")).all())
    assert states == {1: "retired", 2: "active"}
    for token in (old, new):
        assert decrypt_field(session, keyring, subject_id="s1", field="email",
                             token=token) == "a@b.cn"


def test_rotate_all_deks_from_the_cli(settings: Settings, runtime: Runtime) -> None:
    make_keys(runtime, 5)
    result = subprocess.run([PGW, "keys", "rotate-dek", "--all"], env=env(settings),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "5 subjects have new data keys" in result.stdout
    with runtime.session_factory() as session:
        active = session.scalar(select(func.count()).select_from(SubjectKey).where(
            SubjectKey.state == "active", SubjectKey.version == 2))
    assert active == 5


def test_rotation_reencrypts_registered_stores(runtime: Runtime, keyring: Keyring,
                                               session: Session) -> None:
    stored = {"email": encrypt_field(session, keyring, subject_id="s1", field="email",
                                     value="a@b.cn")}

    def reencrypt(session: Session, keyring: Keyring, subject_id: str) -> int:
        for name, token in stored.items():
            value = decrypt_field(session, keyring, subject_id=subject_id, field=name,
                                  token=token)
            stored[name] = encrypt_field(session, keyring, subject_id=subject_id, field=name,
                                         value=value)
        return len(stored)

    wired, keyring.reencryptors = keyring.reencryptors, (reencrypt,)
    try:
        assert rotation.rotate_subject_dek(session, keyring, caller=CALLER, subject_id="s1") == 2
    finally:
        keyring.reencryptors = wired
    assert token_version(stored["email"]) == 2
    assert decrypt_field(session, keyring, subject_id="s1", field="email",
                         token=stored["email"]) == "a@b.cn"
