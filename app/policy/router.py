from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import ConfigDict

from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.deps import PolicyDep
from app.schemas import ResponseModel

router = APIRouter(prefix="/v1/policy", tags=["policy"])
PolicyReader = Annotated[Caller, Depends(RequireScope(Scope.POLICY_READ))]


class PolicyOut(ResponseModel):
    """The policy file's content as parsed (see policies/*.yaml), with its version."""

    model_config = ConfigDict(extra="allow")

    version: str


@router.get("", response_model=PolicyOut)
def get_policy(caller: PolicyReader, policy: PolicyDep) -> PolicyOut:
    """The parsed policy in force and its version (the hash stamped on audit entries)."""
    return PolicyOut.model_validate({"version": policy.version,
                                     **policy.body.model_dump(mode="json")})
