"""Imports every domain's models so that Base.metadata knows all tables (Alembic, tests)."""

from app.access.models import AccessRequest
from app.audit.models import AuditCheckpoint, AuditEntry
from app.consent.models import ConsentEvent, Notice
from app.idempotency import IdempotencyKey
from app.keys.models import KeyRotation, KeySetting, ServiceKey, SubjectKey
from app.records.models import BlindIndex, Record

__all__ = ["AccessRequest", "AuditCheckpoint", "AuditEntry", "BlindIndex", "ConsentEvent",
           "IdempotencyKey", "KeyRotation", "KeySetting", "Notice", "Record", "ServiceKey",
           "SubjectKey"]
