"""Registering webhook subscribers (scope dsr:manage)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Path as PathParam
from pydantic import Field, WithJsonSchema

from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.db import Position
from app.deps import KeyringDep, SessionDep, SettingsDep
from app.errors import NotFound, problems
from app.schemas import Page, StrictModel, keyset_page
from app.webhooks import events, outbox, service, targets
from app.webhooks.schemas import WebhookCreatedOut, WebhookOut

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])
Manager = Annotated[Caller, Depends(RequireScope(Scope.DSR_MANAGE))]


# The OpenAPI document lists the names from the registry; registration checks them, so an
# unknown one is a 422 whose detail names it (also for the CLI, which skips this schema).
EventName = Annotated[str, WithJsonSchema({"type": "string", "enum": list(events.PATTERNS)})]


class WebhookIn(StrictModel):
    url: str = Field(min_length=8, max_length=2048)
    events: list[EventName] = Field(
        min_length=1, max_length=len(events.PATTERNS),
        description="the events to receive: names, a family (`dsr.*`, which also takes "
                    "events added to it later) or `*` for all")


@router.post("", status_code=201, response_model=WebhookCreatedOut)
def register(body: WebhookIn, session: SessionDep, caller: Manager, keyring: KeyringDep,
             settings: SettingsDep) -> WebhookCreatedOut:
    """Subscribe to events (the README lists each one's data). The signing secret is shown
    only here: each delivery carries `PGW-Signature: t=<unix time>,v1=<HMAC-SHA256 of
    "t.body">`. The URL
    must be http(s) (https in production) without credentials or control characters, and its
    host must not be internal (loopback, private, link-local, metadata) unless the operator's
    PGW_WEBHOOK_ALLOW_HOSTS names it."""
    webhook = service.register(session, caller=caller, url=body.url, events=body.events,
                               allow=targets.allow_list(settings.webhook_allow_hosts),
                               require_https=not settings.is_dev)
    return WebhookCreatedOut.model_validate(service.webhook_dict(webhook) | {
        "secret": outbox.secret(session, keyring, webhook.id)})


@router.get("", response_model=Page[WebhookOut])
def list_webhooks(session: SessionDep, caller: Manager,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100,
                  cursor: Annotated[str | None, Query(max_length=200)] = None) -> Page[WebhookOut]:
    """Active subscribers, oldest first."""
    found, following = keyset_page(
        lambda after, n: service.listing(session, limit=n, after=after),
        position=lambda w: Position(w.created_at, w.id), cursor=cursor, limit=limit)
    return Page[WebhookOut].model_validate({"items": [service.webhook_dict(w) for w in found],
                                            "next": following})


@router.delete("/{webhook_id}", status_code=204,
               responses=problems(NotFound))
def remove(webhook_id: Annotated[str, PathParam(min_length=1, max_length=40)],
           session: SessionDep, caller: Manager) -> Response:
    service.disable(session, caller=caller, webhook_id=webhook_id)
    return Response(status_code=204)
