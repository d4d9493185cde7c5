from __future__ import annotations

from datetime import timedelta
from typing import Any

from pydantic import Field, model_validator

from app.access.models import AccessRequest
from app.clock import iso_or_none
from app.schemas import ResponseModel, StrictModel, Timestamp


class AccessRequestIn(StrictModel):
    record_id: str | None = Field(default=None, min_length=1, max_length=40)
    subject_id: str | None = Field(default=None, min_length=1, max_length=255)
    fields: list[str] = Field(min_length=1, max_length=50)
    purpose: str = Field(min_length=1, max_length=64)
    justification: str = Field(min_length=10, max_length=2000)
    duration: timedelta = Field(strict=False, description="ISO 8601 duration (PT2H) or "
                                "seconds; from one minute to seven days")

    @model_validator(mode="after")
    def _one_target(self) -> AccessRequestIn:
        if (self.record_id is None) == (self.subject_id is None):
            raise ValueError("give exactly one of record_id and subject_id")
        return self


class DecisionIn(StrictModel):
    reason: str | None = Field(default=None, min_length=1, max_length=2000)


def request_dict(request: AccessRequest, *, show_subject: bool) -> dict[str, Any]:
    """`show_subject`: whether the viewer may learn whose data the request is about (see
    `service.shows_subject`); otherwise `subject_id` is null."""
    return {"id": request.id, "status": request.status, "requester": request.requester,
            "subject_id": request.subject_id if show_subject else None,
            "record_id": request.record_id,
            "fields": request.fields, "purpose": request.purpose,
            "justification": request.justification,
            "duration_seconds": request.duration_seconds,
            "created_at": iso_or_none(request.created_at), "decided_by": request.decided_by,
            "decided_at": iso_or_none(request.decided_at),
            "decision_reason": request.decision_reason,
            "expires_at": iso_or_none(request.expires_at)}


class AccessRequestOut(ResponseModel):
    id: str
    status: str
    requester: str
    subject_id: str | None = Field(description="null unless the viewer may learn whose data "
                                   "the request is about")
    record_id: str | None
    fields: list[str]
    purpose: str
    justification: str
    duration_seconds: int
    created_at: Timestamp | None
    decided_by: str | None
    decided_at: Timestamp | None
    decision_reason: str | None
    expires_at: Timestamp | None
