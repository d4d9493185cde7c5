from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import BigInteger, Index, Integer, LargeBinary, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, state_column
from app.keys.ciphers import CipherName


class KeyState(StrEnum):
    ACTIVE = "active"
    RETIRED = "retired"  # still decrypts what was encrypted under it
    DESTROYED = "destroyed"


class RotationKind(StrEnum):
    KEK = "kek"
    DEK = "dek"


class RotationStatus(StrEnum):
    RUNNING = "running"
    DONE = "done"


class SubjectKey(Base):
    """One data-encryption key of one data subject, stored wrapped under a KEK version.

    Destroying it (crypto-shredding) deletes the wrapped key: every ciphertext made with it,
    wherever it was copied, can no longer be decrypted.
    """

    __tablename__ = "subject_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer)
    cipher: Mapped[CipherName] = mapped_column(state_column(CipherName, 16))
    wrapped_dek: Mapped[bytes | None] = mapped_column(LargeBinary)
    kek_version: Mapped[int] = mapped_column(Integer, index=True)
    state: Mapped[KeyState] = mapped_column(state_column(KeyState, 16))
    uses: Mapped[int] = mapped_column(BigInteger, default=0)  # nonces reserved so far
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retired_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    destroy_after: Mapped[datetime | None] = mapped_column(UTCDateTime)
    destroyed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    # one active key per subject and cipher, whatever races: a second is refused by the database
    __table_args__ = (UniqueConstraint("subject_id", "version"),
                      Index("uq_subject_keys_active", "subject_id", "cipher", unique=True,
                            sqlite_where=text("state = 'active'"),
                            postgresql_where=text("state = 'active'")))


class ServiceKey(Base):
    """A key of the service itself (the blind-index HMAC key), wrapped under a KEK version."""

    __tablename__ = "service_keys"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    wrapped: Mapped[bytes] = mapped_column(LargeBinary)
    kek_version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class KeySetting(Base):
    """Named integers about keys, e.g. the minimum KEK version still accepted."""

    __tablename__ = "key_settings"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger)


class KeyRotation(Base):
    """Progress of a rotation; a resumed rotation adds to the same row."""

    __tablename__ = "key_rotations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[RotationKind] = mapped_column(state_column(RotationKind, 8))
    target_version: Mapped[int] = mapped_column(Integer)
    subject_id: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[RotationStatus] = mapped_column(state_column(RotationStatus, 16))
    processed: Mapped[int] = mapped_column(BigInteger, default=0)
    total: Mapped[int] = mapped_column(BigInteger, default=0)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class KekVersion(Base):
    """A KEK version the deployment uses, with a check value wrapped under it.

    Every process compares its own key material with the check value, so a wrong key file or
    `PGW_KEK` seals the service at once instead of failing every call; and every process learns
    from this table that a new version exists (a rotation run by another process).
    """

    __tablename__ = "kek_versions"

    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    check_value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
