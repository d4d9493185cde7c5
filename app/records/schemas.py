from __future__ import annotations

from typing import Any

from pydantic import ConfigDict, Field, model_validator

from app.schemas import StrictModel

SubjectId = Field(min_length=1, max_length=255)
PurposeName = Field(min_length=1, max_length=64)


class ProtectIn(StrictModel):
    subject_id: str = SubjectId
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
