from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from app.pii.engine import DEFAULT_THRESHOLD
from app.schemas import StrictModel

MAX_BATCH = 1000


Language = Literal["auto", "en", "zh"]


class ScanRequest(StrictModel):
    text: str
    language: Language = "auto"
    entities: list[str] | None = Field(default=None, max_length=64)
    score_threshold: float = Field(default=DEFAULT_THRESHOLD, ge=0, le=1)


class BatchItem(StrictModel):
    text: str
    language: Language = "auto"


class BatchScanRequest(StrictModel):
    items: list[BatchItem] = Field(min_length=1, max_length=MAX_BATCH)
    entities: list[str] | None = Field(default=None, max_length=64)
    score_threshold: float = Field(default=DEFAULT_THRESHOLD, ge=0, le=1)


class OperatorSpec(StrictModel):
    type: str
    new_value: str | None = Field(default=None, max_length=100)
    masking_char: str | None = Field(default=None, min_length=1, max_length=1)
    level: Literal["range", "year", "month"] | None = None
    width: int | None = Field(default=None, ge=1, le=100)
    keep: int | None = Field(default=None, ge=0, le=10)

    def params(self) -> dict[str, object]:
        return self.model_dump(exclude={"type"}, exclude_none=True)


class RedactRequest(ScanRequest):
    operators: dict[str, OperatorSpec] = Field(
        default_factory=lambda: {"DEFAULT": OperatorSpec(type="replace")}, max_length=64)


class EntityOut(BaseModel):
    type: str
    start: int
    end: int
    score: float
    recognizer: str


class ScanResponse(BaseModel):
    language: str
    entities: list[EntityOut]


class BatchScanResponse(BaseModel):
    results: list[ScanResponse]


class RedactedEntityOut(EntityOut):
    operator: str
    output_start: int
    output_end: int


class RedactResponse(BaseModel):
    language: str
    text: str
    entities: list[RedactedEntityOut]
