from __future__ import annotations

from typing import Any

from pydantic import Field

from app.schemas import StrictModel


class ProtectIn(StrictModel):
    subject_id: str = Field(min_length=1, max_length=255)
    purpose: str = Field(min_length=1, max_length=64)
    record_type: str = Field(min_length=1, max_length=64)
    data: dict[str, Any] = Field(max_length=200)


class UnprotectIn(ProtectIn):
    pass
