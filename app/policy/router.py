from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.errors import PROBLEM_RESPONSES

router = APIRouter(prefix="/v1/policy", tags=["policy"], responses=PROBLEM_RESPONSES)
PolicyReader = Annotated[Caller, Depends(RequireScope(Scope.POLICY_READ))]


@router.get("")
def get_policy(caller: PolicyReader, request: Request) -> dict[str, Any]:
    """The parsed policy in force and its version (the hash stamped on audit entries)."""
    policy = request.app.state.runtime.policy
    return {"version": policy.version, **policy.body.model_dump(mode="json")}
