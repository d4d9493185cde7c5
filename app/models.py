"""Imports every domain's models so that Base.metadata knows all tables (Alembic, tests)."""

from app.access.models import AccessRequest
from app.audit.models import (
    AuditCheckpoint,
    AuditEntry,
    AuditPending,
    AuditSequencer,
    AuditTreeNode,
)
from app.consent.models import ConsentEvent, Notice
from app.console.models import ConsoleLogin, ConsoleSession
from app.dsr.models import DsrEvent, DsrExport, DsrRequest, LegalHold, Tombstone
from app.idempotency import IdempotencyKey
from app.jobs.models import Job, JobAttempt
from app.keys.models import KekVersion, KeyRotation, KeySetting, ServiceKey, SubjectKey
from app.ops.models import Heartbeat
from app.privacy.models import CentreSession, CodeChallenge, Throttle
from app.records.models import BlindIndex, Record
from app.webhooks.models import Webhook

__all__ = ["AccessRequest", "AuditCheckpoint", "AuditEntry", "AuditPending", "AuditSequencer",
           "AuditTreeNode", "BlindIndex", "CentreSession", "CodeChallenge",
           "ConsentEvent", "ConsoleLogin", "ConsoleSession", "DsrEvent", "DsrExport",
           "DsrRequest", "Heartbeat", "IdempotencyKey",
           "Job", "JobAttempt", "KekVersion", "KeyRotation", "KeySetting", "LegalHold", "Notice",
           "Record", "ServiceKey", "SubjectKey", "Throttle", "Tombstone", "Webhook"]
