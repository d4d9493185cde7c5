from __future__ import annotations

from pydantic import Field

from app.schemas import ResponseModel, Timestamp


class WebhookOut(ResponseModel):
    id: str
    url: str
    events: list[str]
    created_at: Timestamp


class WebhookCreatedOut(WebhookOut):
    secret: str = Field(description="signs each delivery (PGW-Signature); shown only here")
