"""A subject's data key as the keyring hands it out, and the associated data keys are wrapped
with."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from app.keys.ciphers import Aead, CipherSpec


def dek_aad(subject_id: str, version: int, cipher_name: str) -> bytes:
    return f"pgw-dek\x00{subject_id}\x00{version}\x00{cipher_name}".encode()


def service_key_aad(name: str) -> bytes:
    return f"pgw-service-key\x00{name}".encode()


@dataclass
class DataKey:
    subject_id: str
    version: int
    cipher: CipherSpec
    aead: Aead
    expires: float
    row_id: int = 0
    # Uses reserved in the database and not yet spent. A range iterator: next() on it is atomic
    # under the GIL, so the hot path needs no lock.
    budget: Iterator[int] = field(default_factory=lambda: iter(()))
    header: bytes = b""  # cipher code and key version: the start of every ciphertext
    aad_tail: bytes = b""  # key version and cipher code: the end of every associated data

    def __post_init__(self) -> None:
        self.header = bytes((self.cipher.code,)) + self.version.to_bytes(4, "big")
        self.aad_tail = f"\x00{self.version}\x00{self.cipher.code}".encode()


@dataclass
class SubjectKeys:
    """What one transaction learnt of a subject's keys when it locked them: the newest version
    of any state and the active version of each cipher. A key another transaction adds later
    makes an insert conflict, and the caller then reads again."""

    latest: int
    active: dict[str, int]
