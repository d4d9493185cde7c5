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
    next: str | None


class CheckpointOut(BaseModel):
    size: int
    head: str
    created_at: str
    key_id: str
    signature: str
    root: str | None = None  # hex Merkle root; absent on checkpoints older than the tree
    note: str | None = None  # the same checkpoint as a signed note (transparency-log format)


class CheckpointPage(BaseModel):
    items: list[CheckpointOut]
    next: str | None


class VerificationOut(BaseModel):
    ok: bool
    entries: int
    head: str
    first_bad_seq: int | None
    reason: str | None
    checkpoints: int
    root: str | None = None


class InclusionProofOut(BaseModel):
    """Entry `entry.seq` is leaf `seq - 1` of the tree of `tree_size` entries that `checkpoint`
    signs; `proof` is the RFC 9162 audit path, hex, leaf upwards."""

    entry: AuditEntryOut
    tree_size: int
    proof: list[str]
    checkpoint: str


class ConsistencyProofOut(BaseModel):
    """The RFC 9162 consistency proof that the tree signed by `checkpoint` (size `to`) extends
    the tree of size `from` (the auditor's own, earlier checkpoint)."""

    from_size: int
    to_size: int
    proof: list[str]
    checkpoint: str
