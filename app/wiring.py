"""The wiring that guards safety, in one function every process calls (`open_runtime` for the
HTTP app, the CLI, the workers and the tests): the legal-hold check key destruction consults,
the re-encryptors a DEK rotation runs, and the job handlers. Nothing is registered by importing
a module; a keyring that was never wired refuses to destroy or rotate keys."""

from __future__ import annotations

from app.dsr import holds
from app.jobs import handlers
from app.jobs.queue import Registry
from app.keys.keyring import Keyring
from app.records import service as records


def wire(*, keyring: Keyring | None = None, jobs: Registry | None = None) -> None:
    if keyring is not None:
        keyring.hold_checks = (holds.subject_hold_reason,)
        keyring.reencryptors = (records.reencrypt_subject,)
    if jobs is not None:
        handlers.register(jobs)
