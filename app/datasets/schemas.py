"""The bodies of the dataset routes."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from app.schemas import IsoDateTime, ResponseModel, StrictModel

MAX_ROWS = 100_000


class Target(StrictModel):
    record_type: str = Field(min_length=1, max_length=64)
    k: int = Field(default=5, ge=2, le=1000)
    l: int = Field(default=2, ge=1, le=100)  # noqa: E741


class AssessIn(Target):
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ROWS)


class Selection(StrictModel):
    """Which stored records of the record type: when they were collected, for which purposes,
    and values of the fields the release holds (after decryption)."""

    created_after: IsoDateTime | None = None
    created_before: IsoDateTime | None = None
    collected_for: list[str] | None = Field(default=None, min_length=1, max_length=32)
    where: dict[str, list[str]] | None = Field(
        default=None, min_length=1, max_length=16,
        description="released field -> the values a record must have one of")


class AnonymizeIn(Target):
    purpose: str = Field(min_length=1, max_length=64)
    rows: list[dict[str, Any]] | None = Field(default=None, min_length=1, max_length=MAX_ROWS)
    select: Selection | None = None
    max_suppression: float = Field(default=0.05, ge=0, le=0.5, strict=False)

    @model_validator(mode="after")
    def _one_source(self) -> AnonymizeIn:
        if (self.rows is None) == (self.select is None):
            raise ValueError("give exactly one of rows (uploaded) and select (stored records)")
        return self

    model_config = {"json_schema_extra": {"examples": [{
        "record_type": "customer_profile", "purpose": "legal_compliance", "k": 5, "l": 2,
        "max_suppression": 0.05,
        "rows": [{"name": "张伟", "birth_date": "1987-06-15", "gender": "M",
                  "postcode": "200120", "address": "上海市浦东新区世纪大道100号"}]}]}}


class RiskReportOut(ResponseModel):
    """Re-identification risk of the rows, over the record type's quasi-identifiers."""

    records: int
    released: int
    suppressed: int
    classes: int
    k: int | None
    l: int | None  # noqa: E741 - the name of the privacy model
    smallest_class: int | None
    max_prosecutor_risk: float | None
    records_at_risk: int
    share_at_risk: float
    k_target: int
    l_target: int
    meets_target: bool


class AnonymizedOut(ResponseModel):
    rows: list[dict[str, Any]]
    report: dict[str, Any]
