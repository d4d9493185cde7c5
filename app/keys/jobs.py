"""Destroying subject keys whose grace period has ended."""

from __future__ import annotations

from app.auth.guard import Caller
from app.jobs.queue import Claimed
from app.keys import shred
from app.runtime import Runtime


def destroy_due_keys(runtime: Runtime, claimed: Claimed) -> None:
    keyring = runtime.require_keyring()
    with runtime.transaction() as session:
        shred.destroy_due(session, keyring, caller=Caller.system("key-destruction"))
