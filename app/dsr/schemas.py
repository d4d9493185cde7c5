from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from app.schemas import IsoDateTime, StrictModel

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
    subject_id: str | None = Field(default=None, min_length=1, max_length=255)
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
    subject_id: str | None = Field(default=None, min_length=1, max_length=255)
    record_type: str | None = Field(default=None, min_length=1, max_length=64)
    reason: str = Field(min_length=5, max_length=2000)
    until: IsoDateTime | None = None

    @model_validator(mode="after")
    def _one_target(self) -> LegalHoldIn:
        if (self.subject_id is None) == (self.record_type is None):
            raise ValueError("give exactly one of subject_id and record_type")
        return self
