from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import Field, field_validator

from app.schemas import ResponseModel, StrictModel, SubjectId, Timestamp


class NoticeIn(StrictModel):
    notice_id: str = Field(pattern=r"^[a-z][a-z0-9_]{1,63}$")
    version: int = Field(ge=1, le=1_000_000)
    language: str = Field(pattern=r"^[a-z]{2}(-[A-Za-z]{2,4})?$")
    text: str = Field(min_length=1, max_length=200_000)
    requires_reconsent: bool = True


class EvidenceIn(StrictModel):
    form_id: str | None = Field(default=None, max_length=128)
    ip_address: str | None = Field(default=None, max_length=64)
    user_agent: str | None = Field(default=None, max_length=1024)


class GuardianIn(StrictModel):
    guardian_id: str = Field(min_length=1, max_length=255)
    relation: str = Field(min_length=1, max_length=64)
    verification: str = Field(min_length=1, max_length=128)


class ConsentIn(StrictModel):
    subject_id: SubjectId
    purpose: str = Field(min_length=1, max_length=64)
    notice_id: str = Field(min_length=1, max_length=64)
    notice_version: int = Field(ge=1, le=1_000_000)
    channel: Literal["web", "app", "store", "phone", "paper", "api"]
    captured_at: datetime = Field(strict=False)  # ISO 8601 text in JSON
    evidence: EvidenceIn = Field(default_factory=EvidenceIn)
    separate: bool = False
    guardian: GuardianIn | None = None
    subject_age: int | None = Field(default=None, ge=0, le=150)
    expires_at: datetime | None = Field(default=None, strict=False)
    jurisdiction: str | None = Field(default=None, max_length=16)

    @field_validator("captured_at", "expires_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone, for example 2026-01-01T00:00:00Z")
        return value


class NoticeOut(ResponseModel):
    notice_id: str
    version: int
    language: str
    sha256: str
    requires_reconsent: bool


class ReceiptedOut(ResponseModel):
    event_id: int
    subject_id: str
    purpose: str
    state: str
    receipt: str = Field(description="a JWS (EdDSA) the subject keeps; verify it with "
                         "GET /v1/consents/receipt-key")


class OptOutOut(ResponseModel):
    subject_id: str
    gpc: bool
    withdrawn: list[ReceiptedOut]


class ConsentEventOut(ResponseModel):
    event_id: int
    purpose: str
    event: str
    notice_id: str | None
    notice_version: int | None
    channel: str
    captured_at: Timestamp
    recorded_at: Timestamp
    separate: bool
    guardian: dict[str, Any] | None
    expires_at: Timestamp | None
    jurisdiction: str | None
    evidence: dict[str, Any]


class PurposeStateOut(ResponseModel):
    state: str
    allowed: bool
    reason: str
    detail: str
    expires_at: Timestamp | None


class ConsentsOut(ResponseModel):
    subject_id: str
    purposes: dict[str, PurposeStateOut]
    history: list[ConsentEventOut]


class ReceiptKeyOut(ResponseModel):
    kid: str
    alg: str
    public_key_pem: str
