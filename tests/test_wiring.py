from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.orm import sessionmaker

from app.audit import service as audit
from app.audit.models import AuditPending
from app.auth.guard import Caller
from app.clock import utcnow
from app.dsr import holds
from app.jobs.queue import Registry
from app.keys import rotation, shred
from app.keys.errors import NotWired
from app.keys.fields import encrypt_field
from app.keys.keyring import Keyring
from app.keys.models import SubjectKey
from app.runtime import Runtime
from app.wiring import wire

CALLER = Caller(sub="ops-1", roles=("security",))


def built_directly(runtime: Runtime) -> Keyring:
    assert runtime.keyring is not None
    return Keyring(kek=runtime.keyring.kek, cipher_name=runtime.settings.cipher,
                   cache_size=10, ttl=60)


def held_subject(runtime: Runtime, subject_id: str = "subj-held") -> None:
    assert runtime.keyring is not None
    with runtime.transaction() as session:
        encrypt_field(session, runtime.keyring, subject_id=subject_id, field="phone",
                      value="13812345678", context="rec-1")
        holds.place(session, runtime.policy, caller=CALLER, subject_id=subject_id,
                    record_type=None, reason="litigation 2026-17", until=None)


def live_keys(runtime: Runtime, subject_id: str = "subj-held") -> int:
    with runtime.session_factory() as session:
        return session.scalar(select(func.count()).select_from(SubjectKey).where(
            SubjectKey.subject_id == subject_id, SubjectKey.state != "destroyed")) or 0


@pytest.mark.parametrize("how", ["open_runtime", "wired by hand"])
def test_a_wired_keyring_refuses_to_destroy_a_held_subjects_keys(runtime: Runtime,
                                                                 how: str) -> None:
    held_subject(runtime)
    keyring = runtime.keyring if how == "open_runtime" else built_directly(runtime)
    assert keyring is not None
    if how == "wired by hand":
        wire(keyring=keyring)
    with runtime.session_factory() as session, pytest.raises(shred.LegalHoldActive,
                                                              match="litigation 2026-17"):
        shred.destroy_subject_keys(session, keyring, caller=CALLER, subject_id="subj-held")
    assert live_keys(runtime) == 1


def test_a_keyring_nobody_wired_refuses_to_destroy_keys_at_all(runtime: Runtime) -> None:
    held_subject(runtime)
    keyring = built_directly(runtime)
    with runtime.session_factory() as session:
        with pytest.raises(NotWired, match="legal-hold"):
            shred.destroy_subject_keys(session, keyring, caller=CALLER, subject_id="subj-held")
        session.execute(update(SubjectKey).where(SubjectKey.subject_id == "subj-held")
                        .values(destroy_after=utcnow() - timedelta(days=1)))
        with pytest.raises(NotWired, match="legal-hold"):
            shred.destroy_due(session, keyring, caller=CALLER)
    assert live_keys(runtime) == 1


def test_a_keyring_nobody_wired_refuses_to_rotate_data_keys(runtime: Runtime) -> None:
    held_subject(runtime)
    with runtime.session_factory() as session, pytest.raises(NotWired, match="re-encryptor"):
        rotation.rotate_subject_dek(session, built_directly(runtime), caller=CALLER,
                                    subject_id="subj-held")


def test_wiring_registers_every_domains_job_handlers() -> None:
    registry = Registry()
    wire(jobs=registry)
    assert sorted(registry.handlers) == sorted([
        "dsr.run", "dsr_deadlines", "export_expiry", "key_destruction", "retention_sweep",
        "webhook.deliver", rotation.KEK_ROTATION_JOB, rotation.DEK_ROTATION_JOB])
    assert sorted(registry.on_failure) == ["dsr.run", "webhook.deliver"]
    assert registry.lane_kinds() == {"webhooks": ("webhook.deliver",)}


def pending_entries(runtime: Runtime) -> int:
    with runtime.session_factory() as session:
        return session.scalar(select(func.count()).select_from(AuditPending)) or 0


def test_audit_hooks_run_only_in_the_services_sessions(runtime: Runtime) -> None:
    before = pending_entries(runtime)
    with sessionmaker(bind=runtime.engine)() as elsewhere:
        audit.record(elsewhere, caller=CALLER, action="test.elsewhere")
        elsewhere.commit()  # no writer here: the hook would refuse, had it run
        assert len(elsewhere.info[audit.PENDING_KEY]) == 1
    assert pending_entries(runtime) == before
    with runtime.session_factory() as session:
        audit.record(session, caller=CALLER, action="test.service")
        session.commit()
        assert audit.PENDING_KEY not in session.info
    assert pending_entries(runtime) >= before + 1
