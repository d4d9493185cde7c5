"""Anonymised releases and risk assessment over HTTP (scope datasets:export)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from pydantic import Field, model_validator

from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.datasets import service
from app.deps import SessionDep
from app.errors import PROBLEM_RESPONSES, Invalid
from app.keys.router import keyring_or_sealed
from app.schemas import IsoDateTime, StrictModel

router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=PROBLEM_RESPONSES)
Exporter = Annotated[Caller, Depends(RequireScope(Scope.DATASETS_EXPORT))]
MAX_ROWS = 100_000


class _Target(StrictModel):
    record_type: str = Field(min_length=1, max_length=64)
    k: int = Field(default=5, ge=2, le=1000)
    l: int = Field(default=2, ge=1, le=100)  # noqa: E741


class AssessIn(_Target):
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ROWS)


class Selection(StrictModel):
    """Stored records of the record type, optionally by when they were collected."""

    created_after: IsoDateTime | None = None
    created_before: IsoDateTime | None = None


class AnonymizeIn(_Target):
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


@router.post("/anonymize")
def anonymize(body: AnonymizeIn, session: SessionDep, caller: Exporter,
              request: Request) -> dict[str, Any]:
    """Drop or pseudonymise direct identifiers, generalise quasi-identifiers to the least
    general levels reaching k and l, suppress the rest up to `max_suppression`; or release
    nothing (422 anonymization-target-unreachable)."""
    policy = request.app.state.runtime.policy
    rows, selection = body.rows, None
    if body.select is not None:
        rows, selection = service.select_rows(
            session, policy, keyring_or_sealed(request), record_type=body.record_type,
            purpose=body.purpose, created_after=body.select.created_after,
            created_before=body.select.created_before)
        if not rows:
            raise Invalid("no stored record matches the selection with a legal basis for "
                          "this purpose", field="select")
    assert rows is not None  # noqa: S101 - the schema requires one source
    result = service.release(session, policy, caller=caller, record_type=body.record_type,
                             purpose=body.purpose, rows=rows, k=body.k, l=body.l,
                             max_suppression=body.max_suppression, selection=selection)
    return {"rows": result.rows, "report": result.report}


@router.post("/assess")
def assess(body: AssessIn, session: SessionDep, caller: Exporter,
           request: Request) -> dict[str, Any]:
    """The risk report of a dataset as given, without changing it."""
    return service.assess(session, request.app.state.runtime.policy, caller=caller,
                          record_type=body.record_type, rows=body.rows, k=body.k, l=body.l)
