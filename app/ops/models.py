from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class Heartbeat(Base):
    """A row the readiness probe rewrites and commits: the proof that the database still
    accepts writes (a full disk fails the commit, not the query)."""

    __tablename__ = "ops_heartbeats"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    beat_at: Mapped[datetime] = mapped_column(UTCDateTime)
