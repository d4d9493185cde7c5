"""Imports every domain's models so that Base.metadata knows all tables (Alembic, tests)."""

from app.audit.models import AuditCheckpoint, AuditEntry
from app.keys.models import KeyRotation, KeySetting, ServiceKey, SubjectKey

__all__ = ["AuditCheckpoint", "AuditEntry", "KeyRotation", "KeySetting", "ServiceKey",
           "SubjectKey"]
