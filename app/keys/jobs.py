"""Key jobs: rotations run to their end, and subject keys whose grace period has ended."""

from __future__ import annotations

from app.auth.guard import Caller
from app.jobs.queue import Claimed
from app.keys import rotation, shred
from app.runtime import Runtime


def destroy_due_keys(runtime: Runtime, claimed: Claimed) -> None:
    keyring = runtime.require_keyring()
    with runtime.transaction() as session:
        shred.destroy_due(session, keyring, caller=Caller.system("key-destruction"))


def rotate_kek(runtime: Runtime, claimed: Claimed) -> None:
    keyring = runtime.require_keyring()
    with runtime.transaction() as session:
        keyring.sync(session)  # the new KEK version was made by another process
    rotation.run_kek_rotation(runtime.session_factory, keyring,
                              caller=rotation.job_caller(claimed.payload),
                              rotation_id=claimed.payload["rotation_id"])


def rotate_all_deks(runtime: Runtime, claimed: Claimed) -> None:
    rotation.run_dek_rotation(runtime.session_factory, runtime.require_keyring(),
                              caller=rotation.job_caller(claimed.payload),
                              rotation_id=claimed.payload["rotation_id"])
