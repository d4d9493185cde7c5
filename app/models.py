"""Imports every domain's models so that Base.metadata knows all tables (Alembic, tests)."""

from app.audit.models import AuditCheckpoint, AuditEntry
from app.consent.models import ConsentEvent, Notice
from app.idempotency import IdempotencyKey
from app.keys.models import KeyRotation, KeySetting, ServiceKey, SubjectKey

__all__ = ["AuditCheckpoint", "AuditEntry", "ConsentEvent", "IdempotencyKey", "KeyRotation",
           "KeySetting", "Notice", "ServiceKey", "SubjectKey"]
