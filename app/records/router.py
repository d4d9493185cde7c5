"""The gateway's write-through and read-through of stored customer records."""

from __future__ import annotations

import dataclasses
import json
from functools import partial
from typing import Annotated

from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError
from sqlalchemy.orm import Session
from sqlalchemy.orm.exc import StaleDataError

from app import idempotency
from app.auth import limits
from app.auth.guard import Caller, RequireScope
from app.auth.scopes import Scope
from app.capacity import Busy
from app.deps import KeyringDep, RuntimeDep, SessionDep, on_lane
from app.errors import (
    DATABASE_PROBLEMS,
    Conflict,
    Forbidden,
    GatewayError,
    Invalid,
    NotFound,
    problems,
)
from app.keys.errors import KeyDamaged, KeyRetired, SubjectErased
from app.keys.keyring import Keyring
from app.keys.shred import LegalHoldActive
from app.pii.deadline import ScanTimeout
from app.policy.loader import Policy
from app.records import batch, reading, service
from app.records.access import ConsentDenied
from app.records.schemas import (
    BatchOut,
    LookupIn,
    LookupOut,
    RecordIn,
    RecordViewOut,
    RectifiedRecordOut,
    RectifyIn,
    StoredRecordOut,
)
from app.records.service import RecordClosed
from app.records.validation import PurposeNotAllowed
from app.runtime import Runtime
from app.schemas import Page, SubjectIdCheck, decode_cursor, encode_cursor

router = APIRouter(tags=["records"])
Writer = Annotated[Caller, Depends(RequireScope(Scope.RECORDS_WRITE))]
Reader = Annotated[Caller, Depends(RequireScope(Scope.RECORDS_READ))]
LookupCaller = Annotated[Caller, Depends(RequireScope(Scope.DSR_MANAGE, Scope.RECORDS_READ))]
RecordId = Annotated[str, PathParam(min_length=1, max_length=40)]
SubjectPath = Annotated[str, PathParam(min_length=1, max_length=255), SubjectIdCheck]
PurposeQuery = Annotated[str, Query(min_length=1, max_length=64, examples=["account_management"],
                                    description="Why the data is read; decides what is seen")]
FieldsQuery = Annotated[str | None, Query(max_length=2000, pattern=r"^[a-z0-9_,]*$",
                                          description="Comma-separated fields to return")]


class PreconditionFailed(GatewayError):
    status, type, title = 412, "precondition-failed", "Precondition failed"


def _etag(version: int) -> str:
    return f'"{version}"'


# The two busiest endpoints are `async def` and run their work on a thread themselves: for a
# plain `def` endpoint FastAPI also sends the response's validation to a thread, a second trip
# per request. At most PGW_REQUEST_THREADS writes and as many reads work at once in a process;
# the rest wait on the event loop, where waiting costs nothing, instead of as threads taking the
# GIL by turns (capacity.Lane). Reads have threads of their own: writes scanning long notes do
# not take them, and a write waiting for a thread does not count as using the database.
@router.post("/v1/records", status_code=201, response_model=StoredRecordOut,
             responses=problems(PurposeNotAllowed, ConsentDenied, ScanTimeout, Conflict,
                                SubjectErased, Busy, *DATABASE_PROBLEMS))
async def create_record(
        body: RecordIn, caller: Writer, keyring: KeyringDep,
        runtime: RuntimeDep, request: Request, response: Response,
        idempotency_key: Annotated[str | None, Header(alias=idempotency.HEADER)] = None,
) -> StoredRecordOut:
    """Check purpose, minimisation, field types and consent; scan free text; protect and store
    the record. Returns the storage view: what the upstream may keep."""
    return await on_lane(runtime.write_lane, request, partial(
        _create_record, body, caller, keyring, runtime, response, idempotency_key))


def _create_record(body: RecordIn, caller: Caller, keyring: Keyring, runtime: Runtime,
                   response: Response, idempotency_key: str | None,
                   session: Session) -> StoredRecordOut:
    keys = service.Keys.of(runtime, keyring)
    if idempotency_key is not None:  # the claim's statement opens the transaction: scan first
        keys = service.scan_before(runtime.policy, keys, record_type=body.record_type,
                                   purpose=body.purpose, data=body.data)
    claimed = idempotency.begin(session, caller=caller, key=idempotency_key,
                                route="POST /v1/records", body=body.model_dump(mode="json"),
                                settings=runtime.settings,
                                subject_id=body.subject_id, keyring=keyring)
    if claimed is not None and claimed.response is not None:
        return StoredRecordOut.model_validate(idempotency.replay(claimed, response, 201))
    if claimed is not None:  # `remember` seals the response under the subject's key
        keys = dataclasses.replace(keys, sealed=True)
    written = service.create(session, runtime.policy, keys, caller=caller,
                             subject_id=body.subject_id, purpose=body.purpose,
                             record_type=body.record_type, data=body.data)
    result = written.as_dict()
    headers = {"Location": f"/v1/records/{written.record.id}",
               "ETag": _etag(written.record.version)}
    if claimed is not None:
        idempotency.remember(claimed, 201, result, headers)
    response.headers.update(headers)
    return StoredRecordOut.model_validate(result)


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


@router.post("/v1/records/batch", response_model=BatchOut, response_model_exclude_unset=True,
             openapi_extra={"requestBody": {
    "required": True, "content": {"application/json": {"schema": _BATCH_SCHEMA}}}},
             responses=problems(Conflict))
def create_records(caller: Writer, body: Annotated[batch.BatchIn, Depends(_batch_body)],
                   session: SessionDep, keyring: KeyringDep, runtime: RuntimeDep, request: Request,
                   idempotency_key: Annotated[str | None, Header(alias=idempotency.HEADER)] = None,
                   ) -> BatchOut:
    """Up to 1,000 records, each as `POST /v1/records` takes it. Always 200 once the batch is
    accepted: `results` holds one entry per item, in order, `created` with its `record_id` or
    `error` with its problem; the items that failed changed nothing."""
    settings = runtime.settings
    # parsed and scanned before the first statement: on SQLite that takes the write lock
    prepared = batch.prepare(runtime.policy, settings, body.records)
    claimed = idempotency.begin(session, caller=caller, key=idempotency_key, route=batch.ROUTE,
                                body=body.model_dump(mode="json"), settings=settings,
                                keyring=keyring)
    if claimed is not None and claimed.response is not None:
        return BatchOut.model_validate(claimed.response)
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

    result = batch.create_many(session, runtime.policy, service.Keys.of(runtime, keyring),
                               caller=caller, prepared=prepared, allow=allow)
    if claimed is not None:
        idempotency.remember(claimed, 200, result)
    return BatchOut.model_validate(result)


@router.get("/v1/records/{record_id}", response_model=RecordViewOut,
            responses=problems(NotFound, KeyDamaged, KeyRetired, Busy, *DATABASE_PROBLEMS))
async def read_record(record_id: RecordId, purpose: PurposeQuery, caller: Reader,
                      keyring: KeyringDep, runtime: RuntimeDep, request: Request,
                      response: Response, fields: FieldsQuery = None) -> RecordViewOut:
    """Each field clear, masked or not at all, and why (`access`)."""
    only = {name for name in fields.split(",") if name} if fields else None
    out, version = await on_lane(runtime.read_lane, request, partial(
        _read_record, runtime.policy, keyring, caller=caller, record_id=record_id,
        purpose=purpose, only=only))
    response.headers["ETag"] = _etag(version)
    return out


def _read_record(policy: Policy, keyring: Keyring, session: Session, *, caller: Caller,
                 record_id: str, purpose: str, only: set[str] | None,
                 ) -> tuple[RecordViewOut, int]:
    """The view, built before the read's audit entry commits (a view that cannot be built
    fails the read, unaudited as read), and the record's version for its ETag."""
    seen = reading.read_one(session, policy, keyring, caller=caller, record_id=record_id,
                            purpose=purpose, only=only)
    return RecordViewOut.model_validate(seen.as_dict()), seen.record.version


@router.patch("/v1/records/{record_id}", response_model=RectifiedRecordOut,
              responses=problems(NotFound, PreconditionFailed, Conflict, RecordClosed,
                                 PurposeNotAllowed, ConsentDenied, ScanTimeout, KeyDamaged,
                                 KeyRetired))
def rectify_record(record_id: RecordId, body: RectifyIn, session: SessionDep, caller: Writer,
                   keyring: KeyringDep, runtime: RuntimeDep, response: Response,
                   if_match: Annotated[str | None, Header(max_length=64)] = None,
                   ) -> RectifiedRecordOut:
    """Rectify fields (null removes an optional one) with the same checks as a write, against
    the purpose the record was collected for (`purpose` must name it)."""
    record = service.for_rectification(session, runtime.policy, caller=caller,
                                       record_id=record_id)
    if if_match is not None and if_match != _etag(record.version):
        raise PreconditionFailed("the record changed since you read it", etag=_etag(
            record.version))
    try:
        written = service.rectify(session, runtime.policy, service.Keys.of(runtime, keyring),
                                  caller=caller, record=record, purpose=body.purpose,
                                  data=body.data)
    except StaleDataError:
        raise Conflict("the record was changed by another request; read it and try again") \
            from None
    response.headers["ETag"] = _etag(written.record.version)
    return RectifiedRecordOut.model_validate(written.as_dict() | {"removed": written.removed})


@router.delete("/v1/records/{record_id}", status_code=204,
               responses=problems(NotFound, LegalHoldActive))
def delete_record(record_id: RecordId, session: SessionDep, caller: Writer) -> Response:
    """Delete the record and its blind indexes (refused under a legal hold)."""
    record = service.for_writer(session, caller=caller, record_id=record_id,
                                refused="record.delete_refused", lock=True)
    service.remove(session, caller=caller, record=record)
    return Response(status_code=204)


@router.get("/v1/subjects/{subject_id}/records", response_model=Page[RecordViewOut],
            responses=problems(KeyDamaged, KeyRetired))
def subject_records(subject_id: SubjectPath, purpose: PurposeQuery, session: SessionDep,
                    caller: Reader, keyring: KeyringDep, runtime: RuntimeDep,
                    limit: Annotated[int, Query(ge=1, le=500)] = 100,
                    cursor: Annotated[str | None, Query(max_length=200)] = None,
                    ) -> Page[RecordViewOut]:
    """The subject's records this caller may see for the purpose; follow `next` for more."""
    after = decode_cursor(cursor)
    views, next_after = reading.read_subject(session, runtime.policy, keyring, caller=caller,
                                             subject_id=subject_id, purpose=purpose,
                                             limit=limit, after=after)
    return Page[RecordViewOut].model_validate({
        "items": [v.as_dict() for v in views],
        "next": encode_cursor(next_after) if next_after is not None else None})


@router.post("/v1/subjects/lookup", response_model=LookupOut,
             responses=problems(Forbidden))
def lookup_subjects(body: LookupIn, session: SessionDep, caller: LookupCaller,
                    keyring: KeyringDep, runtime: RuntimeDep) -> LookupOut:
    """Find subject ids by e-mail, phone or resident ID through blind indexes."""
    kind, value = body.identifier()
    found = reading.lookup(session, runtime.policy, keyring, caller=caller, kind=kind,
                           value=value, purpose=body.purpose)
    return LookupOut.model_validate({"subject_ids": found})
