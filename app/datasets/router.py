"""Anonymised releases and risk assessment over HTTP (scope datasets:export)."""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field, model_validator
from starlette.concurrency import run_in_threadpool

from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.datasets import files, service
from app.deps import SessionDep
from app.errors import PROBLEM_RESPONSES, Invalid
from app.keys.router import keyring_or_sealed
from app.schemas import IsoDateTime, StrictModel

MAX_ROWS = 100_000
_ROW_SOURCES = ("rows", "select")  # the body's fields an upload replaces


class _Uploaded(Request):
    """A CSV or JSON Lines upload, seen by the route as the JSON body it stands for."""

    def __init__(self, request: Request, body: bytes):
        headers = [(name, value) for name, value in request.scope["headers"]
                   if name != b"content-type"] + [(b"content-type", b"application/json")]
        super().__init__({**request.scope, "headers": headers, "query_string": b""},
                         request.receive)
        self._json_body = body

    async def body(self) -> bytes:
        return self._json_body


def _json_body(upload: bytes, fmt: files.Format, query: dict[str, str]) -> bytes:
    """The JSON body an upload stands for: its rows, and the other fields from the query."""
    try:
        text = upload.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Invalid("the upload is not UTF-8 text", field="rows") from None
    body: dict[str, Any] = {"rows": files.parse(text, fmt)}
    for name, value in query.items():
        convert, what = _NUMBERS.get(_QUERY_TYPES.get(name, "string"), (str, "text"))
        try:
            body[name] = convert(value)
        except ValueError:
            raise Invalid(f"{name} must be {what}", field=name) from None
    return json.dumps(body).encode()


async def _as_json(request: Request, fmt: files.Format) -> Request:
    # parsing a large upload takes a while: not on the event loop
    body = await run_in_threadpool(_json_body, await request.body(), fmt,
                                   dict(request.query_params))
    return _Uploaded(request, body)


class UploadRoute(APIRoute):
    """Takes the rows as CSV (`text/csv`) or JSON Lines (`application/x-ndjson`) as well as
    JSON; the body's other fields then come in the query string."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            fmt = files.format_of_media_type(request.headers.get("content-type"))
            if fmt is not None:
                return await handler(await _as_json(request, fmt))
            if request.query_params:
                name = next(iter(request.query_params))
                raise Invalid("query parameters go with CSV or JSON Lines uploads; a JSON "
                              "body carries its own", field=name)
            return await handler(request)

        return route


router = APIRouter(prefix="/v1/datasets", tags=["datasets"], responses=PROBLEM_RESPONSES,
                   route_class=UploadRoute)
Exporter = Annotated[Caller, Depends(RequireScope(Scope.DATASETS_EXPORT))]


def _query_schemas(model: type[BaseModel]) -> dict[str, dict[str, Any]]:
    """The JSON schema of each body field an upload takes from the query string."""
    return {name: schema for name, schema in model.model_json_schema()["properties"].items()
            if name not in _ROW_SOURCES}


def _upload_doc(model: type[BaseModel]) -> dict[str, Any]:
    """The OpenAPI description of the upload forms of a body."""
    return {
        "requestBody": {"content": {
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


class _Target(StrictModel):
    record_type: str = Field(min_length=1, max_length=64)
    k: int = Field(default=5, ge=2, le=1000)
    l: int = Field(default=2, ge=1, le=100)  # noqa: E741


class AssessIn(_Target):
    rows: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_ROWS)


class Selection(StrictModel):
    """Which stored records of the record type: when they were collected, for which purposes,
    and values of the fields the release holds (after decryption)."""

    created_after: IsoDateTime | None = None
    created_before: IsoDateTime | None = None
    collected_for: list[str] | None = Field(default=None, min_length=1, max_length=32)
    where: dict[str, list[str]] | None = Field(
        default=None, min_length=1, max_length=16,
        description="released field -> the values a record must have one of")


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


# how a query value becomes the body's value, by the field's JSON schema type
_NUMBERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "integer": (int, "an integer"), "number": (float, "a number")}
# AnonymizeIn's query fields include AssessIn's
_QUERY_TYPES = {name: schema.get("type", "string")
                for name, schema in _query_schemas(AnonymizeIn).items()}

_ROWS_OUT: dict[int | str, dict[str, Any]] = {200: {
    "content": {"text/csv": {}, "application/x-ndjson": {}},
    "description": "The rows and the report; with `Accept: text/csv` or "
                   "`application/x-ndjson` the rows alone, the report in `PGW-Risk-Report`"}}


@router.post("/anonymize", responses=_ROWS_OUT, openapi_extra=_upload_doc(AnonymizeIn))
def anonymize(body: AnonymizeIn, session: SessionDep, caller: Exporter,
              request: Request) -> Any:
    """Drop or pseudonymise direct identifiers, generalise quasi-identifiers to the least
    general levels that reach k and l (of those, the one losing the least information),
    suppress the rest up to `max_suppression`; or release nothing (422
    anonymization-target-unreachable).

    The rows come as `rows` in a JSON body, as a CSV or JSON Lines body (the other fields
    then in the query string), or from stored records (`select`)."""
    policy = request.app.state.runtime.policy
    rows, selection = body.rows, None
    if body.select is not None:
        rows, selection = service.select_rows(
            session, policy, keyring_or_sealed(request), record_type=body.record_type,
            purpose=body.purpose, filters=service.Filters(**body.select.model_dump()))
        if not rows:
            raise Invalid("no stored record matches the selection with a legal basis for "
                          "this purpose", field="select")
    assert rows is not None  # noqa: S101 - the schema requires one source
    result = service.release(session, policy, caller=caller, record_type=body.record_type,
                             purpose=body.purpose, rows=rows, k=body.k, l=body.l,
                             max_suppression=body.max_suppression, selection=selection)
    return _reply(request, result.rows, result.report)


@router.post("/assess", openapi_extra=_upload_doc(AssessIn))
def assess(body: AssessIn, session: SessionDep, caller: Exporter,
           request: Request) -> dict[str, Any]:
    """The risk report of a dataset as given, without changing it."""
    return service.assess(session, request.app.state.runtime.policy, caller=caller,
                          record_type=body.record_type, rows=body.rows, k=body.k, l=body.l)
