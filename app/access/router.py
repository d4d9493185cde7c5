"""Apply, approve, audit: elevated access to named fields for a purpose and a time."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam

from app.access import service
from app.access.models import AccessRequestStatus
from app.access.schemas import AccessRequestIn, DecisionIn, request_dict
from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.deps import SessionDep
from app.errors import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/access-requests", tags=["access"], responses=PROBLEM_RESPONSES)
Requester = Annotated[Caller, Depends(RequireScope(Scope.RECORDS_READ))]
Approver = Annotated[Caller, Depends(RequireScope(Scope.ACCESS_APPROVE))]
Viewer = Annotated[Caller, Depends(RequireScope(Scope.RECORDS_READ, Scope.ACCESS_APPROVE))]
RequestId = Annotated[str, PathParam(min_length=1, max_length=40)]


@router.post("", status_code=201)
def apply(body: AccessRequestIn, session: SessionDep, caller: Requester,
          request: Request) -> dict[str, Any]:
    """Ask for fields in clear beyond what your roles give; someone else decides."""
    created = service.apply(session, request.app.state.runtime.policy, caller=caller,
                            subject_id=body.subject_id, record_id=body.record_id,
                            fields=body.fields, purpose=body.purpose,
                            justification=body.justification, duration=body.duration)
    return request_dict(created, show_subject=service.shows_subject(created, caller=caller))


@router.get("")
def list_requests(session: SessionDep, caller: Viewer,
                  status: Annotated[AccessRequestStatus | None, Query()] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100) -> dict[str, Any]:
    """Approvers see every request; anyone else sees their own."""
    found = service.listing(session, caller=caller, status=status, limit=limit)
    return {"access_requests": [request_dict(r, show_subject=service.shows_subject(
        r, caller=caller)) for r in found]}


@router.get("/{request_id}")
def get_request(request_id: RequestId, session: SessionDep, caller: Viewer) -> dict[str, Any]:
    found = service.get_visible(session, caller=caller, request_id=request_id)
    return request_dict(found, show_subject=service.shows_subject(found, caller=caller))


@router.post("/{request_id}/approve")
def approve(request_id: RequestId, body: DecisionIn, session: SessionDep,
            caller: Approver) -> dict[str, Any]:
    """Grant the request for its duration; the approver cannot be the requester."""
    decided = service.decide(session, caller=caller, request_id=request_id, approve=True,
                             reason=body.reason)
    return request_dict(decided, show_subject=service.shows_subject(decided, caller=caller))


@router.post("/{request_id}/deny")
def deny(request_id: RequestId, body: DecisionIn, session: SessionDep,
         caller: Approver) -> dict[str, Any]:
    decided = service.decide(session, caller=caller, request_id=request_id, approve=False,
                             reason=body.reason)
    return request_dict(decided, show_subject=service.shows_subject(decided, caller=caller))
