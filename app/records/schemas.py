from __future__ import annotations

from typing import Any, Literal

from pydantic import ConfigDict, Field, model_validator

from app.schemas import ResponseModel, StrictModel, SubjectId, Timestamp

PurposeName = Field(min_length=1, max_length=64)


class ProtectIn(StrictModel):
    subject_id: SubjectId
    purpose: str = PurposeName
    record_type: str = Field(min_length=1, max_length=64)
    data: dict[str, Any] = Field(max_length=200)


class UnprotectIn(ProtectIn):
    # the encrypted originals of scanned free text, as /v1/protect returned them
    originals: dict[str, str] = Field(default_factory=dict, max_length=200)


class RecordIn(ProtectIn):
    model_config = ConfigDict(json_schema_extra={"examples": [{
        "subject_id": "cust-1042", "purpose": "account_management",
        "record_type": "customer_profile",
        "data": {"name": "张伟", "email": "zhang.wei@example.cn", "phone": "13812345678"}}]})


class RectifyIn(StrictModel):
    purpose: str = PurposeName
    data: dict[str, Any] = Field(min_length=1, max_length=200)


class LookupIn(StrictModel):
    email: str | None = Field(default=None, min_length=1, max_length=320)
    phone: str | None = Field(default=None, min_length=1, max_length=64)
    cn_resident_id: str | None = Field(default=None, min_length=1, max_length=64)
    purpose: str | None = Field(default=None, min_length=1, max_length=64)

    @model_validator(mode="after")
    def _one_identifier(self) -> LookupIn:
        given = [k for k in ("email", "phone", "cn_resident_id") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of email, phone, cn_resident_id")
        return self

    def identifier(self) -> tuple[str, str]:
        for kind in ("email", "phone", "cn_resident_id"):
            value = getattr(self, kind)
            if value:
                return kind, value
        raise AssertionError("validated to hold one identifier")


class StoredRecordOut(ResponseModel):
    """The storage view of a write: what the upstream may keep."""

    record_id: str
    subject_id: str
    record_type: str
    data: dict[str, Any]
    findings: list[dict[str, Any]]
    dropped: list[str]
    retention_until: Timestamp | None
    field_retention: dict[str, Any] | None
    legal_basis: str | None
    flags: list[str]


class RectifiedRecordOut(StoredRecordOut):
    removed: list[str]


class RecordViewOut(ResponseModel):
    """A read: each field clear, masked or left out, and why (`access`)."""

    record_id: str
    subject_id: str
    record_type: str
    data: dict[str, Any]
    access: dict[str, dict[str, str]]
    created_at: Timestamp
    updated_at: Timestamp
    retention_until: Timestamp | None


class BatchResultOut(ResponseModel):
    index: int
    status: Literal["created", "error"]
    record_id: str | None = None
    findings: dict[str, Any] | None = None
    dropped: list[str] | None = None
    flags: list[str] | None = None
    problem: dict[str, Any] | None = None


class BatchOut(ResponseModel):
    created: int
    failed: int
    results: list[BatchResultOut]


class LookupOut(ResponseModel):
    subject_ids: list[str]


class ProtectedOut(ResponseModel):
    subject_id: str
    record_type: str
    data: dict[str, Any]
    originals: dict[str, Any]
    findings: list[dict[str, Any]]
    dropped: list[str]
    decision: dict[str, Any]


class UnprotectedOut(ResponseModel):
    subject_id: str
    record_type: str
    data: dict[str, Any]
    access: dict[str, dict[str, str]]
