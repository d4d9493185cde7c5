from __future__ import annotations

from datetime import datetime

from sqlalchemy import Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class CodeChallenge(Base):
    """A one-time code sent to an address the company holds for a person. A challenge for an
    address that matches nobody is stored too (with no subject), so that it answers alike."""

    __tablename__ = "privacy_challenges"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_id: Mapped[str | None] = mapped_column(String(255))
    channel: Mapped[str] = mapped_column(String(8))  # email or phone
    code_hash: Mapped[str] = mapped_column(String(64))  # keyed hash; the code is never kept
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    attempts: Mapped[int] = mapped_column(Integer)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CentreSession(Base):
    """A verified person's short session: the cookie holds a random token, this its hash."""

    __tablename__ = "privacy_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Throttle(Base):
    """One code asked for, under each key it counts against (a keyed hash of the address, of
    the subject or of the client's IP address), for the hourly limits."""

    __tablename__ = "privacy_throttle"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(80))
    at: Mapped[datetime] = mapped_column(UTCDateTime)

    __table_args__ = (Index("ix_privacy_throttle_key_at", "key", "at"),)
