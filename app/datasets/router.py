"""Anonymised releases and risk assessment over HTTP (scope datasets:export)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.datasets import files, service, uploads
from app.datasets.schemas import AnonymizedOut, AnonymizeIn, AssessIn, RiskReportOut
from app.datasets.service import TargetUnreachable
from app.deps import PolicyDep, RuntimeDep, SessionDep
from app.errors import problems
from app.keys.errors import KeyDamaged, KeyRetired, Sealed

_ROW_SOURCES = ("rows", "select")  # the body's fields an upload replaces

router = APIRouter(prefix="/v1/datasets", tags=["datasets"])
Exporter = Annotated[Caller, Depends(RequireScope(Scope.DATASETS_EXPORT))]


# Each body is a dependency on the caller, so it is read only once the caller is known to be
# allowed; a body parameter would be read and parsed before any dependency ran.
async def _assess_body(request: Request, caller: Exporter) -> AssessIn:
    return await uploads.read(request, AssessIn)


async def _anonymize_body(request: Request, caller: Exporter) -> AnonymizeIn:
    return await uploads.read(request, AnonymizeIn)


def _inline(schema: Any, defs: dict[str, Any]) -> Any:
    """A JSON schema with its local references replaced by what they name."""
    if isinstance(schema, dict):
        ref = schema.get("$ref", "")
        if ref.startswith("#/$defs/"):
            return _inline(defs[ref.removeprefix("#/$defs/")], defs)
        return {key: _inline(value, defs) for key, value in schema.items() if key != "$defs"}
    if isinstance(schema, list):
        return [_inline(item, defs) for item in schema]
    return schema


def _query_schemas(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """The JSON schema of each body field an upload takes from the query string."""
    return {name: schema for name, schema in model.model_json_schema()["properties"].items()
            if name not in _ROW_SOURCES}


def _upload_doc(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI description of the body, which the route reads itself: JSON, or the rows
    as CSV or JSON Lines with the other fields in the query."""
    schema = model.model_json_schema()
    return {
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": _inline(schema, schema.get("$defs", {}))},
            "text/csv": {"schema": {"type": "string", "description": "a header line, then "
                                    "one row per line"}},
            "application/x-ndjson": {"schema": {"type": "string", "description":
                                                "one JSON object per line"}}}},
        "parameters": [{"name": name, "in": "query", "required": False,
                        "description": "with a CSV or JSON Lines body only", "schema": schema}
                       for name, schema in _query_schemas(model).items()],
    }


def _reply(request: Request, rows: list[dict[str, Any]], report: dict[str, Any]) -> Any:
    """JSON, or the rows as CSV or JSON Lines when asked (Accept), the report in a header."""
    fmt = files.format_of_media_type(request.headers.get("accept"))
    if fmt is None:
        return {"rows": rows, "report": report}
    return Response(files.render(rows, fmt), media_type=files.MEDIA_TYPE_OF[fmt],
                    headers={"PGW-Risk-Report": json.dumps(report)})


_ROWS_OUT: dict[int | str, dict[str, Any]] = {200: {
    "content": {"text/csv": {}, "application/x-ndjson": {}},
    "description": "The rows and the report; with `Accept: text/csv` or "
                   "`application/x-ndjson` the rows alone, the report in `PGW-Risk-Report`"}}


@router.post("/anonymize", response_model=AnonymizedOut,
             responses=_ROWS_OUT | problems(TargetUnreachable, Sealed, KeyDamaged, KeyRetired),
             openapi_extra=_upload_doc(AnonymizeIn))
def anonymize(caller: Exporter, body: Annotated[AnonymizeIn, Depends(_anonymize_body)],
              session: SessionDep, request: Request, runtime: RuntimeDep) -> Any:
    """Drop or pseudonymise direct identifiers, generalise quasi-identifiers to the least
    general levels that reach k and l (of those, the one losing the least information),
    suppress the rest up to `max_suppression`; or release nothing (422
    anonymization-target-unreachable).

    The rows come as `rows` in a JSON body, as a CSV or JSON Lines body (the other fields
    then in the query string), or from stored records (`select`)."""
    policy = runtime.policy
    rows, selection = body.rows, None
    if body.select is not None:
        rows, selection = service.select_rows(
            session, policy, runtime.require_keyring(), record_type=body.record_type,
            purpose=body.purpose, filters=service.Filters(**body.select.model_dump()))
    assert rows is not None  # noqa: S101 - the schema requires one source
    result = service.release(session, policy, caller=caller, record_type=body.record_type,
                             purpose=body.purpose, rows=rows, k=body.k, l=body.l,
                             max_suppression=body.max_suppression, selection=selection)
    return _reply(request, result.rows, result.report)


@router.post("/assess", response_model=RiskReportOut, openapi_extra=_upload_doc(AssessIn))
def assess(caller: Exporter, body: Annotated[AssessIn, Depends(_assess_body)],
           session: SessionDep, policy: PolicyDep) -> RiskReportOut:
    """The risk report of a dataset as given, without changing it."""
    return RiskReportOut.model_validate(service.assess(
        session, policy, caller=caller, record_type=body.record_type, rows=body.rows, k=body.k,
        l=body.l))
