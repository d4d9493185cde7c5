from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class AuditEntryOut(BaseModel):
    seq: int
    ts: str
    actor: str
    roles: list[str]
    action: str
    purpose: str | None
    subject_id: str | None
    resource: str | None
    outcome: str
    details: dict[str, Any]
    request_id: str | None
    policy_version: str | None
    prev_hash: str
    hash: str


class AuditPage(BaseModel):
    items: list[AuditEntryOut]
    next_cursor: str | None


class CheckpointOut(BaseModel):
    size: int
    head: str
    created_at: str
    key_id: str
    signature: str


class CheckpointPage(BaseModel):
    items: list[CheckpointOut]
    next_cursor: str | None


class VerificationOut(BaseModel):
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None
    reason: str | None
    checkpoints: int
