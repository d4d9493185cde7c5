"""Apply, approve, audit: elevated access to named fields for a purpose and a time."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response
from fastapi import Path as PathParam

from app.access import service
from app.access.models import AccessRequest, AccessRequestStatus
from app.access.schemas import AccessRequestIn, AccessRequestOut, DecisionIn, request_dict
from app.access.service import SameApprover
from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.db import Position
from app.deps import PolicyDep, SessionDep
from app.errors import Conflict, NotFound, problems
from app.schemas import Page, keyset_page

router = APIRouter(prefix="/v1/access-requests", tags=["access"])
Requester = Annotated[Caller, Depends(RequireScope(Scope.RECORDS_READ))]
Approver = Annotated[Caller, Depends(RequireScope(Scope.ACCESS_APPROVE))]
Viewer = Annotated[Caller, Depends(RequireScope(Scope.RECORDS_READ, Scope.ACCESS_APPROVE))]
RequestId = Annotated[str, PathParam(min_length=1, max_length=40)]


def _out(request: AccessRequest, caller: Caller) -> AccessRequestOut:
    return AccessRequestOut.model_validate(
        request_dict(request, show_subject=service.shows_subject(request, caller=caller)))


@router.post("", status_code=201, response_model=AccessRequestOut,
             responses=problems(NotFound))
def apply(body: AccessRequestIn, session: SessionDep, caller: Requester,
          policy: PolicyDep, response: Response) -> AccessRequestOut:
    """Ask for fields in clear beyond what your roles give; someone else decides."""
    created = service.apply(session, policy, caller=caller,
                            subject_id=body.subject_id, record_id=body.record_id,
                            fields=body.fields, purpose=body.purpose,
                            justification=body.justification, duration=body.duration)
    response.headers["Location"] = f"/v1/access-requests/{created.id}"
    return _out(created, caller)


@router.get("", response_model=Page[AccessRequestOut])
def list_requests(session: SessionDep, caller: Viewer,
                  status: Annotated[AccessRequestStatus | None, Query()] = None,
                  limit: Annotated[int, Query(ge=1, le=500)] = 100,
                  cursor: Annotated[str | None, Query(max_length=200)] = None,
                  ) -> Page[AccessRequestOut]:
    """Approvers see every request; anyone else sees their own. Newest first."""
    found, following = keyset_page(
        lambda after, n: service.listing(session, caller=caller, status=status, limit=n,
                                         after=after),
        position=lambda r: Position(r.created_at, r.id), cursor=cursor, limit=limit)
    return Page[AccessRequestOut](items=[_out(r, caller) for r in found], next=following)


@router.get("/{request_id}", response_model=AccessRequestOut,
            responses=problems(NotFound))
def get_request(request_id: RequestId, session: SessionDep, caller: Viewer) -> AccessRequestOut:
    found = service.get_visible(session, caller=caller, request_id=request_id)
    return _out(found, caller)


@router.post("/{request_id}/approve", response_model=AccessRequestOut,
             responses=problems(NotFound, SameApprover, Conflict))
def approve(request_id: RequestId, body: DecisionIn, session: SessionDep,
            caller: Approver) -> AccessRequestOut:
    """Grant the request for its duration; the approver cannot be the requester."""
    decided = service.decide(session, caller=caller, request_id=request_id, approve=True,
                             reason=body.reason)
    return _out(decided, caller)


@router.post("/{request_id}/deny", response_model=AccessRequestOut,
             responses=problems(NotFound, SameApprover, Conflict))
def deny(request_id: RequestId, body: DecisionIn, session: SessionDep,
         caller: Approver) -> AccessRequestOut:
    decided = service.decide(session, caller=caller, request_id=request_id, approve=False,
                             reason=body.reason)
    return _out(decided, caller)
