from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    FetchedValue,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, UTCDateTime


class EntryFields:
    """What an audit entry says, the same queued and sequenced."""

    ts: Mapped[datetime] = mapped_column(UTCDateTime)
    actor: Mapped[str] = mapped_column(String(255))
    roles: Mapped[list[str]] = mapped_column(JSON)
    action: Mapped[str] = mapped_column(String(100))
    purpose: Mapped[str | None] = mapped_column(String(100))
    subject_id: Mapped[str | None] = mapped_column(String(255))
    resource: Mapped[str | None] = mapped_column(String(255))
    outcome: Mapped[str] = mapped_column(String(16))
    details: Mapped[dict[str, Any]] = mapped_column(JSON)
    request_id: Mapped[str | None] = mapped_column(String(128))
    policy_version: Mapped[str | None] = mapped_column(String(80))


class AuditEntry(EntryFields, Base):
    """One link of the hash chain and one leaf of the Merkle tree, written by the sequencer.
    The database refuses UPDATE and DELETE on this table."""

    __tablename__ = "audit_entries"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)

    __table_args__ = (
        Index(None, "ts"),
        Index(None, "actor"),
        Index(None, "action"),
        Index(None, "subject_id"),
    )


class AuditPending(EntryFields, Base):
    """An entry written by a business transaction and not yet sequenced: the sequencer gives it
    its sequence number and chain hash, moves it to `audit_entries` and deletes it here, in one
    transaction. Writers share no lock and read nothing; their ids only order the queue."""

    __tablename__ = "audit_pending"

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"),
                                    primary_key=True, autoincrement=True)
    # when the database queued the row, by its own clock (migration 0012 sets the default); no
    # writer may set it (`app.db_roles`), so the integration lag is measured with it, not `ts`
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True),
                                                server_default=FetchedValue())


class AuditCheckpoint(Base):
    """A signed statement of the log's size, chain head and Merkle root at one moment. Those
    made before the Merkle tree existed have no root and no note."""

    __tablename__ = "audit_checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    size: Mapped[int] = mapped_column(BigInteger, unique=True)
    head: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    key_id: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))
    root: Mapped[str | None] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)


class AuditSequencer(Base):
    """One row, locked (FOR UPDATE) by the sequencer for each batch. A row lock needs UPDATE on
    the table, which only the sequencer's role has: the service's role cannot stall it."""

    __tablename__ = "audit_sequencer"

    id: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)


class AuditTreeNode(Base):
    """The hash of one perfect subtree of the Merkle tree over the entries: level 0 holds the
    leaves (entry `seq` is leaf `seq - 1`), level l node i covers leaves [i * 2^l, (i+1) * 2^l).
    Written once by the sequencer; the database refuses UPDATE and DELETE."""

    __tablename__ = "audit_tree_nodes"

    level: Mapped[int] = mapped_column(SmallInteger, primary_key=True, autoincrement=False)
    idx: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    hash: Mapped[str] = mapped_column(String(64))
