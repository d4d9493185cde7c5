"""Keyrings as other processes have them, and a subject's key rows as stored: for the tests
that race writes, reads and destructions over a subject's keys."""

from __future__ import annotations

import time
from collections.abc import Callable

from sqlalchemy import select

from app.keys.keyring import Keyring
from app.keys.models import SubjectKey
from app.runtime import Runtime


def other_keyring(runtime: Runtime, clock: Callable[[], float] = time.monotonic) -> Keyring:
    """A keyring with a cache of its own, as another process has."""
    assert runtime.keyring is not None
    return Keyring(kek=runtime.keyring.kek, cipher_name="aes-256-gcm", cache_size=100, ttl=60,
                   clock=clock)


def key_rows(runtime: Runtime, subject: str) -> list[tuple[int, str, str]]:
    """The subject's keys as stored: (version, cipher, state), by version."""
    with runtime.session_factory() as session:
        return [(row.version, row.cipher, row.state) for row in session.execute(
            select(SubjectKey.version, SubjectKey.cipher, SubjectKey.state)
            .where(SubjectKey.subject_id == subject).order_by(SubjectKey.version))]
