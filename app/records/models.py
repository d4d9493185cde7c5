from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class Record(Base):
    """One customer record in its storage view: each field as policy protects it at rest
    (ciphertexts under the subject's key, masked or hashed values, clear values)."""

    __tablename__ = "records"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(255), index=True)
    record_type: Mapped[str] = mapped_column(String(64))
    purpose: Mapped[str] = mapped_column(String(64))  # the purpose it was collected for
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    # free text scanned for PII: the original, encrypted; `data` holds it with the PII protected
    originals: Mapped[dict[str, str]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    retention_until: Mapped[datetime | None] = mapped_column(UTCDateTime, index=True)
    field_retention: Mapped[dict[str, str]] = mapped_column(JSON)  # field -> ISO time
    restricted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # a DSR restriction
    deidentified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # retention ended
    # the subject was erased; a law keeps this record (restricted) until its retention ends
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    version: Mapped[int] = mapped_column(Integer)

    __mapper_args__ = {"version_id_col": version}


class BlindIndex(Base):
    """A keyed hash of a normalised identifier: finds a subject without decrypting anything."""

    __tablename__ = "blind_indexes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    record_id: Mapped[str] = mapped_column(ForeignKey("records.id", ondelete="CASCADE"),
                                           index=True)
    subject_id: Mapped[str] = mapped_column(String(255))
    field: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))  # email, phone, cn_resident_id
    digest: Mapped[str] = mapped_column(String(64))

    __table_args__ = (Index("ix_blind_indexes_kind_digest", "kind", "digest"),)
