"""Imports every domain's models so that Base.metadata knows all tables (Alembic, tests)."""

from app.audit.models import AuditCheckpoint, AuditEntry

__all__ = ["AuditCheckpoint", "AuditEntry"]
