from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from app.audit import sequencer
from app.audit import service as audit
from app.auth.guard import Caller
from app.config import Settings
from app.runtime import Runtime
from tests.audit_log import sequenced

__all__ = ["running_sequencers", "sequenced", "tamper", "write_entries"]


def write_entries(runtime: Runtime, count: int, *, actor: str = "svc-test",
                  subject_id: str | None = "subj-1", action: str = "record.read") -> None:
    """Append `count` entries, one committed transaction each, as a service would."""
    for i in range(count):
        with runtime.session_factory() as session:
            audit.record(session, caller=Caller(sub=actor, roles=("agent",), request_id=f"r{i}"),
                         action=action, subject_id=subject_id, purpose="support",
                         details={"fields": ["email"], "n": i})
            session.commit()


@contextmanager
def running_sequencers(runtime: Runtime, count: int, *, limit: int,
                       pause: float = 0.0) -> Iterator[list[BaseException]]:
    """`count` threads stepping the sequencer (batches of `limit`, `pause` seconds apart) until
    the block ends; yields the list of what they raised (each thread stops at its first)."""
    stop = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        while not stop.is_set():
            try:
                sequencer.step(runtime, limit=limit)
            except BaseException as exc:  # noqa: BLE001 - reported to the test
                errors.append(exc)
                return
            if pause:
                stop.wait(pause)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    try:
        yield errors
    finally:
        stop.set()
        for thread in threads:
            thread.join()


def tamper(engine: Engine, *statements: str) -> None:
    """Change audit rows the way an attacker with database access would: triggers off first."""
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_entries DISABLE TRIGGER USER"))
            conn.execute(text("ALTER TABLE audit_checkpoints DISABLE TRIGGER USER"))
            conn.execute(text("ALTER TABLE audit_tree_nodes DISABLE TRIGGER USER"))
        else:
            for table in ("audit_entries", "audit_checkpoints", "audit_tree_nodes"):
                for op in ("update", "delete"):
                    conn.execute(text(f"DROP TRIGGER IF EXISTS {table}_no_{op}"))
        for statement in statements:
            conn.execute(text(statement))


@pytest.fixture
def cli_env(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Callable[[], dict[str, str]]:
    """Environment that points `pgw` at this test's database and data dir."""
    values = {
        "PGW_DATABASE_URL": settings.sqlalchemy_url,
        "PGW_DATA_DIR": str(settings.data_dir),
        "PGW_POLICY_DIR": str(settings.policy_dir),
        "PGW_JWT_SECRET": settings.jwt_secret.get_secret_value() if settings.jwt_secret else "",
        "PGW_JWT_ISSUER": settings.jwt_issuer,
    }
    for key, value in values.items():
        monkeypatch.setenv(key, value)

    def env() -> dict[str, str]:
        import os

        return {**os.environ, **values}

    return env


@pytest.fixture
def public_key_file(runtime: Runtime, tmp_path: Path) -> Path:
    assert runtime.audit_signer is not None
    path = tmp_path / "audit-public.pem"
    path.write_text(runtime.audit_signer.public_pem())
    return path
