from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import JSON, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, state_column


class AccessRequestStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    DENIED = "denied"
    EXPIRED = "expired"  # approved, and its duration has passed (or it was revoked)


class AccessRequest(Base):
    """A request for wider access than the requester's roles give: pending until someone else
    approves or denies it; an approved grant lasts `duration_seconds` and then expires."""

    __tablename__ = "access_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    requester: Mapped[str] = mapped_column(String(255), index=True)
    subject_id: Mapped[str] = mapped_column(String(255))
    record_id: Mapped[str | None] = mapped_column(String(40))
    fields: Mapped[list[str]] = mapped_column(JSON)
    purpose: Mapped[str] = mapped_column(String(64))
    justification: Mapped[str] = mapped_column(Text)
    duration_seconds: Mapped[int] = mapped_column(Integer)
    status: Mapped[AccessRequestStatus] = mapped_column(state_column(AccessRequestStatus, 16),
                                                        index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    decided_by: Mapped[str | None] = mapped_column(String(255))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    decision_reason: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
