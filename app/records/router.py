"""The gateway's write-through and read-through of stored customer records."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm.exc import StaleDataError

from app import idempotency
from app.auth import limits
from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.deps import SessionDep
from app.errors import PROBLEM_RESPONSES, Conflict, GatewayError, Invalid
from app.keys.keyring import Keyring
from app.keys.router import KeyringDep
from app.policy.loader import Policy
from app.records import batch, reading, service, storage
from app.records.schemas import LookupIn, RecordIn, RectifyIn

router = APIRouter(tags=["records"], responses=PROBLEM_RESPONSES)
Writer = Annotated[Caller, Depends(RequireScope(Scope.RECORDS_WRITE))]
Reader = Annotated[Caller, Depends(RequireScope(Scope.RECORDS_READ))]
LookupCaller = Annotated[Caller, Depends(RequireScope(Scope.DSR_MANAGE, Scope.RECORDS_READ))]
RecordId = Annotated[str, PathParam(min_length=1, max_length=40)]
SubjectPath = Annotated[str, PathParam(min_length=1, max_length=255)]
PurposeQuery = Annotated[str, Query(min_length=1, max_length=64, examples=["account_management"],
                                    description="Why the data is read; decides what is seen")]
FieldsQuery = Annotated[str | None, Query(max_length=2000, pattern=r"^[a-z0-9_,]*$",
                                          description="Comma-separated fields to return")]


class PreconditionFailed(GatewayError):
    status, type, title = 412, "precondition-failed", "Precondition failed"


def _policy(request: Request) -> Policy:
    policy: Policy = request.app.state.runtime.policy
    return policy


def _keys(request: Request, keyring: Keyring) -> service.Keys:
    runtime = request.app.state.runtime
    return service.Keys(keyring=keyring, hash_key=runtime.pii_hash_key,
                        scan=storage.scanner(runtime.settings))


def _etag(version: int) -> str:
    return f'"{version}"'


@router.post("/v1/records", status_code=201)
def create_record(body: RecordIn, session: SessionDep, caller: Writer, keyring: KeyringDep,
                  request: Request, response: Response,
                  idempotency_key: Annotated[str | None, Header(alias=idempotency.HEADER)] = None,
                  ) -> dict[str, Any]:
    """Check purpose, minimisation, field types and consent; scan free text; protect and store
    the record. Returns the storage view: what the upstream may keep."""
    claimed = idempotency.begin(session, caller=caller, key=idempotency_key,
                                route="POST /v1/records", body=body.model_dump(mode="json"),
                                settings=request.app.state.runtime.settings,
                                subject_id=body.subject_id, keyring=keyring)
    if claimed is not None and claimed.response is not None:
        response.status_code = claimed.status_code or 201
        return claimed.response
    written = service.create(session, _policy(request), _keys(request, keyring), caller=caller,
                             subject_id=body.subject_id, purpose=body.purpose,
                             record_type=body.record_type, data=body.data)
    result = written.as_dict()
    if claimed is not None:
        idempotency.remember(claimed, 201, result)
    response.headers["Location"] = f"/v1/records/{written.record.id}"
    response.headers["ETag"] = _etag(written.record.version)
    return result


async def _batch_body(request: Request, caller: Writer) -> batch.BatchIn:
    """The batch, read only once the caller is authenticated (PGW_MAX_BATCH_BYTES bounds it)."""
    try:
        raw = json.loads(await request.body())
    except ValueError:
        raise Invalid("the request body is not JSON", field="body") from None
    try:
        return batch.BatchIn.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from None


_BATCH_SCHEMA = {"type": "object", "required": ["records"], "additionalProperties": False,
                 "properties": {"records": {"type": "array", "minItems": 1,
                                            "maxItems": batch.MAX_ITEMS,
                                            "items": {"$ref": "#/components/schemas/RecordIn"}}}}


@router.post("/v1/records/batch", openapi_extra={"requestBody": {
    "required": True, "content": {"application/json": {"schema": _BATCH_SCHEMA}}}})
def create_records(caller: Writer, body: Annotated[batch.BatchIn, Depends(_batch_body)],
                   session: SessionDep, keyring: KeyringDep, request: Request,
                   idempotency_key: Annotated[str | None, Header(alias=idempotency.HEADER)] = None,
                   ) -> dict[str, Any]:
    """Up to 1,000 records, each as `POST /v1/records` takes it. Always 200 once the batch is
    accepted: `results` holds one entry per item, in order, `created` with its `record_id` or
    `error` with its problem; the items that failed changed nothing."""
    settings = request.app.state.runtime.settings
    # parsed and scanned before the first statement: on SQLite that takes the write lock
    prepared = batch.prepare(_policy(request), settings, body.records)
    claimed = idempotency.begin(session, caller=caller, key=idempotency_key, route=batch.ROUTE,
                                body=body.model_dump(mode="json"), settings=settings,
                                keyring=keyring)
    if claimed is not None and claimed.response is not None:
        return claimed.response
    limiter: limits.RateLimiter = request.app.state.rate_limiter
    route_class = limits.route_class(request.url.path)

    def allow(index: int) -> GatewayError | None:
        # the request paid for its first item; each further one spends a request's worth
        refused = None if index == 0 else limiter.take(caller.sub, route_class)
        if refused is None:
            return None
        return limits.RateLimited(f"the rate limit for {route_class!r} is spent "
                                  f"(PGW_RATE_LIMITS); try again in {refused[0]} s",
                                  retry_after=refused[0])

    result = batch.create_many(session, _policy(request), _keys(request, keyring), caller=caller,
                               prepared=prepared, allow=allow)
    if claimed is not None:
        idempotency.remember(claimed, 200, result)
    return result


@router.get("/v1/records/{record_id}")
def read_record(record_id: RecordId, purpose: PurposeQuery, session: SessionDep,
                caller: Reader, keyring: KeyringDep, request: Request, response: Response,
                fields: FieldsQuery = None) -> dict[str, Any]:
    """Each field clear, masked or not at all, and why (`access`)."""
    only = {name for name in fields.split(",") if name} if fields else None
    seen = reading.read_one(session, _policy(request), keyring, caller=caller,
                            record_id=record_id, purpose=purpose, only=only)
    response.headers["ETag"] = _etag(seen.record.version)
    return seen.as_dict()


@router.patch("/v1/records/{record_id}")
def rectify_record(record_id: RecordId, body: RectifyIn, session: SessionDep, caller: Writer,
                   keyring: KeyringDep, request: Request, response: Response,
                   if_match: Annotated[str | None, Header(max_length=64)] = None,
                   ) -> dict[str, Any]:
    """Rectify fields (null removes an optional one) with the same checks as a write, against
    the purpose the record was collected for (`purpose` must name it)."""
    record = service.for_rectification(session, _policy(request), caller=caller,
                                       record_id=record_id)
    if if_match is not None and if_match != _etag(record.version):
        raise PreconditionFailed("the record changed since you read it", etag=_etag(
            record.version))
    try:
        written = service.rectify(session, _policy(request), _keys(request, keyring),
                                  caller=caller, record=record, purpose=body.purpose,
                                  data=body.data)
    except StaleDataError:
        raise Conflict("the record was changed by another request; read it and try again") \
            from None
    response.headers["ETag"] = _etag(written.record.version)
    return written.as_dict() | {"removed": written.removed}


@router.delete("/v1/records/{record_id}", status_code=204)
def delete_record(record_id: RecordId, session: SessionDep, caller: Writer) -> Response:
    """Delete the record and its blind indexes (refused under a legal hold)."""
    record = service.for_writer(session, caller=caller, record_id=record_id,
                                refused="record.delete_refused", lock=True)
    service.remove(session, caller=caller, record=record)
    return Response(status_code=204)


@router.get("/v1/subjects/{subject_id}/records")
def subject_records(subject_id: SubjectPath, purpose: PurposeQuery, session: SessionDep,
                    caller: Reader, keyring: KeyringDep, request: Request,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100,
                    after: Annotated[str | None, Query(max_length=40)] = None,
                    ) -> dict[str, Any]:
    """The subject's records this caller may see for the purpose; page with `after`."""
    views, next_after = reading.read_subject(session, _policy(request), keyring, caller=caller,
                                 subject_id=subject_id, purpose=purpose, limit=limit,
                                 after=after)
    return {"subject_id": subject_id, "records": [v.as_dict() for v in views],
            "next_after": next_after}


@router.post("/v1/subjects/lookup")
def lookup_subjects(body: LookupIn, session: SessionDep, caller: LookupCaller,
                    keyring: KeyringDep, request: Request) -> dict[str, Any]:
    """Find subject ids by e-mail, phone or resident ID through blind indexes."""
    kind, value = body.identifier()
    found = reading.lookup(session, _policy(request), keyring, caller=caller, kind=kind,
                           value=value, purpose=body.purpose)
    return {"subject_ids": found}
