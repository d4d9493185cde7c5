from __future__ import annotations

from contextlib import suppress
from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from app.schemas import (
    IsoDateTime,
    ResponseModel,
    StrictModel,
    SubjectId,
    Timestamp,
    rfc3339,
)

DsrType = Literal["access", "portability", "erasure", "rectification", "restriction",
                  "objection"]


class Identifiers(StrictModel):
    email: str | None = Field(default=None, min_length=3, max_length=320)
    phone: str | None = Field(default=None, min_length=3, max_length=40)
    cn_resident_id: str | None = Field(default=None, min_length=15, max_length=18)

    def given(self) -> dict[str, str]:
        return {k: v for k, v in self.model_dump().items() if v is not None}


class VerificationIn(StrictModel):
    method: str = Field(min_length=1, max_length=64, pattern=r"^[a-z][a-z0-9_]{0,63}$",
                        description="a method listed in the policy (policies/verification.yaml)")
    reference: str | None = Field(default=None, min_length=1, max_length=200,
                                  description="the verifier's own reference, e.g. a session or "
                                  "ticket id; stored encrypted under the subject's key")


class DsrIn(StrictModel):
    subject_id: SubjectId | None = None
    identifiers: Identifiers | None = None
    type: DsrType
    jurisdiction: str = Field(min_length=2, max_length=16)
    verification: VerificationIn = Field(
        description="how the person was verified; it counts only when asserted by a caller "
        "with scope dsr:verify, by a method sufficient for the type; otherwise the request "
        'waits as "unverified"')
    corrections: dict[str, Any] | None = Field(
        default=None, description="rectification only: field name -> corrected value")
    language: Literal["en", "zh"] | None = Field(
        default=None, description="of the export page; by default Chinese under PIPL")

    model_config = {"json_schema_extra": {"examples": [{
        "subject_id": "cust-1001", "type": "access", "jurisdiction": "PIPL",
        "verification": {"method": "logged_in_session"}}]}}

    @model_validator(mode="after")
    def _one_subject(self) -> DsrIn:
        if (self.subject_id is None) == (self.identifiers is None or
                                         not self.identifiers.given()):
            raise ValueError("give exactly one of subject_id and identifiers")
        return self


class ReasonIn(StrictModel):
    reason: str = Field(min_length=5, max_length=2000)


class LegalHoldIn(StrictModel):
    subject_id: SubjectId | None = None
    record_type: str | None = Field(default=None, min_length=1, max_length=64)
    reason: str = Field(min_length=5, max_length=2000)
    until: IsoDateTime | None = None

    @model_validator(mode="after")
    def _one_target(self) -> LegalHoldIn:
        if (self.subject_id is None) == (self.record_type is None):
            raise ValueError("give exactly one of subject_id and record_type")
        return self


class DsrSubmittedOut(ResponseModel):
    id: str
    status: str
    due_at: Timestamp


class VerificationOut(ResponseModel):
    method: str | None
    verified: bool
    verified_by: str | None
    verified_at: Timestamp | None


class TimelineEntryOut(ResponseModel):
    """One step: an event of the request (with its details) or an attempt of its job."""

    model_config = ConfigDict(extra="allow")

    at: Timestamp
    event: str
    actor: str | None

    @model_validator(mode="after")
    def _times_in_details(self) -> TimelineEntryOut:
        # an event's details are free-form; the times among them go out in the one form too
        extra = self.__pydantic_extra__ or {}
        for key, value in extra.items():
            if key.endswith(("_at", "_until")) and isinstance(value, str):
                with suppress(ValueError):
                    extra[key] = rfc3339(datetime.fromisoformat(value))
        return self


class DsrOut(ResponseModel):
    """A request. `subject_id` is left out for the service that submitted it; `timeline` is
    given to `dsr:manage` on reading one request."""

    id: str
    subject_id: str | None = None
    type: str
    jurisdiction: str
    status: str
    language: str
    submitted_at: Timestamp
    due_at: Timestamp
    overdue: bool
    extended: bool
    extension_reason: str | None
    rejection_reason: str | None
    closed_at: Timestamp | None
    verification: VerificationOut
    result: dict[str, Any]
    timeline: list[TimelineEntryOut] | None = None


class CertificateOut(ResponseModel):
    certificate: str
    key_id: str | None
    public_key: str | None


class LegalHoldOut(ResponseModel):
    id: str
    subject_id: str | None
    record_type: str | None
    reason: str
    until: Timestamp | None
    created_by: str
    created_at: Timestamp
    released_at: Timestamp | None
    released_by: str | None
    active: bool
    resumed_requests: list[str] | None = None
