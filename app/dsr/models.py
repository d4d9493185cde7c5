from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime, state_column


class DsrStatus(StrEnum):
    UNVERIFIED = "unverified"  # waits for a trusted caller to verify the person; does nothing
    RECEIVED = "received"
    IN_PROGRESS = "in_progress"
    ON_HOLD = "on_hold"  # a legal hold stops an erasure until it ends
    COMPLETED = "completed"
    REJECTED = "rejected"
    FAILED = "failed"  # its job gave up; an operator may retry it


class DsrRequest(Base):
    """A data subject's request, its legal deadline and where its job got to."""

    __tablename__ = "dsr_requests"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(255), index=True)
    type: Mapped[str] = mapped_column(String(16))
    jurisdiction: Mapped[str] = mapped_column(String(16))
    status: Mapped[DsrStatus] = mapped_column(state_column(DsrStatus, 16), index=True)
    language: Mapped[str] = mapped_column(String(8))
    # how the person was verified, and the corrections asked for: both may hold personal data,
    # so both are encrypted under the subject's key
    verification: Mapped[str] = mapped_column(Text)
    corrections: Mapped[str | None] = mapped_column(Text)
    # the method asserted by a caller trusted to verify identities (scope dsr:verify), who
    # asserted it and when; None while the request waits for verification and does nothing
    verification_method: Mapped[str | None] = mapped_column(String(64))
    verified_by: Mapped[str | None] = mapped_column(String(255))
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    submitted_by: Mapped[str] = mapped_column(String(255))
    submitted_at: Mapped[datetime] = mapped_column(UTCDateTime)
    due_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    first_due_at: Mapped[datetime] = mapped_column(UTCDateTime)
    extension_reason: Mapped[str | None] = mapped_column(Text)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    step: Mapped[str | None] = mapped_column(String(32))  # the last step done (resumable jobs)
    result: Mapped[dict[str, Any]] = mapped_column(JSON)  # counts, never personal data
    certificate: Mapped[str | None] = mapped_column(Text)  # signed certificate of erasure
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class DsrEvent(Base):
    """One step in a request's timeline (job attempts are added from the job tables)."""

    __tablename__ = "dsr_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dsr_id: Mapped[str] = mapped_column(ForeignKey("dsr_requests.id", ondelete="CASCADE"),
                                        index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    event: Mapped[str] = mapped_column(String(48))
    actor: Mapped[str] = mapped_column(String(255))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)


class DsrExport(Base):
    """An access or portability export, encrypted under the subject's key until it expires."""

    __tablename__ = "dsr_exports"

    dsr_id: Mapped[str] = mapped_column(ForeignKey("dsr_requests.id", ondelete="CASCADE"),
                                        primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(255), index=True)
    json_doc: Mapped[str] = mapped_column(Text)
    html_doc: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class Tombstone(Base):
    """What is left of an erased subject: a keyed hash of their id, so that a later write for
    them is recognised, without keeping the id itself."""

    __tablename__ = "tombstones"

    digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    erased_at: Mapped[datetime] = mapped_column(UTCDateTime)
    dsr_id: Mapped[str] = mapped_column(String(40))


class LegalHold(Base):
    """Keeps a subject's data, or every record of a type, from erasure and retention deletion."""

    __tablename__ = "legal_holds"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_id: Mapped[str | None] = mapped_column(String(255), index=True)
    record_type: Mapped[str | None] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    released_by: Mapped[str | None] = mapped_column(String(255))
    released_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
