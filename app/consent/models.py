from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, state_column


class ConsentEventKind(StrEnum):
    GRANTED = "granted"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"


class Notice(Base):
    """The text a subject was shown, per notice, version and language."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    notice_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    language: Mapped[str] = mapped_column(String(16))
    text: Mapped[str] = mapped_column(Text)
    sha256: Mapped[str] = mapped_column(String(64))
    # a new version that changes purpose, method or data types: earlier consents must be asked
    # again (PIPL art. 14)
    requires_reconsent: Mapped[bool] = mapped_column(Boolean)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (UniqueConstraint("notice_id", "version", "language"),)


class ConsentEvent(Base):
    """One grant, withdrawal or expiry; append-only. The current state is derived from these."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(255), index=True)
    purpose: Mapped[str] = mapped_column(String(64))
    event: Mapped[ConsentEventKind] = mapped_column(state_column(ConsentEventKind, 16))
    notice_id: Mapped[str | None] = mapped_column(String(64))
    notice_version: Mapped[int | None] = mapped_column(Integer)
    channel: Mapped[str] = mapped_column(String(16))
    captured_at: Mapped[datetime] = mapped_column(UTCDateTime)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    evidence: Mapped[dict[str, Any]] = mapped_column(JSON)
    separate: Mapped[bool] = mapped_column(Boolean)
    guardian: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    subject_age: Mapped[int | None] = mapped_column(Integer)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    jurisdiction: Mapped[str | None] = mapped_column(String(16))
    actor: Mapped[str] = mapped_column(String(255))
