from __future__ import annotations

from typing import Literal

from app.schemas import ResponseModel, Timestamp


class RotationOut(ResponseModel):
    id: int
    kind: str
    target_version: int | None
    status: str
    processed: int
    total: int | None
    started_at: Timestamp
    finished_at: Timestamp | None


class KekVersionsOut(ResponseModel):
    versions: list[int]
    current: int
    min_accepted: int | None


class SubjectKeyCountsOut(ResponseModel):
    by_state: dict[str, int]
    by_kek_version: dict[str, int]
    pending_destruction: int


class KeyStatusOut(ResponseModel):
    """Versions, counts and rotation progress; never key material."""

    sealed: bool
    problems: list[str]
    provider: str
    cipher: str
    kek: KekVersionsOut
    subject_keys: SubjectKeyCountsOut
    rotations: list[RotationOut]


class RotationStartedOut(ResponseModel):
    """A DEK rotation (done: `subject_id`, `version`) or a KEK rotation (running:
    `rotation_id`, `target_version`, `status`)."""

    kind: Literal["kek", "dek"]
    subject_id: str | None = None
    version: int | None = None
    rotation_id: int | None = None
    target_version: int | None = None
    status: str | None = None
    job_id: int | None = None  # the job that runs a KEK rotation or a DEK rotation of all


class DestroyedOut(ResponseModel):
    subject_id: str
    destroyed: bool
    destroy_after: Timestamp | None


class CancelledOut(ResponseModel):
    subject_id: str
    cancelled_keys: int
