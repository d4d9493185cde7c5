"""Apply, approve, audit: elevated access to named fields for a purpose and a time."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Path as PathParam

from app.access import service
from app.access.schemas import AccessRequestIn, AccessRequestOut, DecisionIn, request_dict
from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.deps import PolicyDep, SessionDep
from app.errors import PROBLEM_RESPONSES
from app.schemas import Page, offset_page

router = APIRouter(prefix="/v1/access-requests", tags=["access"], responses=PROBLEM_RESPONSES)
Requester = Annotated[Caller, Depends(RequireScope(Scope.RECORDS_READ))]
Approver = Annotated[Caller, Depends(RequireScope(Scope.ACCESS_APPROVE))]
Viewer = Annotated[Caller, Depends(RequireScope(Scope.RECORDS_READ, Scope.ACCESS_APPROVE))]
RequestId = Annotated[str, PathParam(min_length=1, max_length=40)]


@router.post("", status_code=201, response_model=AccessRequestOut)
def apply(body: AccessRequestIn, session: SessionDep, caller: Requester,
          policy: PolicyDep, response: Response) -> dict[str, Any]:
    """Ask for fields in clear beyond what your roles give; someone else decides."""
    created = service.apply(session, policy, caller=caller,
                            subject_id=body.subject_id, record_id=body.record_id,
                            fields=body.fields, purpose=body.purpose,
                            justification=body.justification, duration=body.duration)
    response.headers["Location"] = f"/v1/access-requests/{created.id}"
    return request_dict(created, show_subject=service.shows_subject(created, caller=caller))


@router.get("", response_model=Page[AccessRequestOut])
def list_requests(session: SessionDep, caller: Viewer,
                  status: Annotated[Literal["pending", "approved", "denied", "expired"] | None,
                                    Query()] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100,
                  cursor: Annotated[str | None, Query(max_length=200)] = None) -> dict[str, Any]:
    """Approvers see every request; anyone else sees their own. Newest first."""
    found, following = offset_page(
        lambda n: service.listing(session, caller=caller, status=status, limit=n),
        cursor=cursor, limit=limit)
    return {"items": [request_dict(r, show_subject=service.shows_subject(r, caller=caller))
                      for r in found], "next": following}


@router.get("/{request_id}", response_model=AccessRequestOut)
def get_request(request_id: RequestId, session: SessionDep, caller: Viewer) -> dict[str, Any]:
    found = service.get_visible(session, caller=caller, request_id=request_id)
    return request_dict(found, show_subject=service.shows_subject(found, caller=caller))


@router.post("/{request_id}/approve", response_model=AccessRequestOut)
def approve(request_id: RequestId, body: DecisionIn, session: SessionDep,
            caller: Approver) -> dict[str, Any]:
    """Grant the request for its duration; the approver cannot be the requester."""
    decided = service.decide(session, caller=caller, request_id=request_id, approve=True,
                             reason=body.reason)
    return request_dict(decided, show_subject=service.shows_subject(decided, caller=caller))


@router.post("/{request_id}/deny", response_model=AccessRequestOut)
def deny(request_id: RequestId, body: DecisionIn, session: SessionDep,
         caller: Approver) -> dict[str, Any]:
    decided = service.decide(session, caller=caller, request_id=request_id, approve=False,
                             reason=body.reason)
    return request_dict(decided, show_subject=service.shows_subject(decided, caller=caller))
