"""Reading a dataset request's body: only after its caller is authenticated and authorised, and
while it streams in, stopping at the byte, line and row limits.

FastAPI reads and parses a declared body parameter before any dependency runs, so an
anonymous client could make the service read and parse 64 MiB. The routes therefore declare
no body: a dependency that needs the caller reads it, and the rows are parsed in a worker
thread as the chunks arrive, keeping only the columns the policy names for the record type.
What one request holds is then bounded by its limits, not by what a client sends.
"""

from __future__ import annotations

import functools
import io
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any, TypeVar

import anyio.from_thread
import anyio.to_thread
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from app.datasets import files, service
from app.datasets.schemas import MAX_ROWS, Target
from app.errors import Invalid, PayloadTooLarge

Model = TypeVar("Model", bound=Target)

MAX_LINE_CHARS = 1 << 20  # one CSV or JSON Lines line; json.loads of one may take ~20x
# A JSON body is parsed whole, and each value costs Python some 30-70 bytes however short its
# text, so a body of tiny values may take 20 times its size: its values are counted first.
MAX_JSON_VALUES = 32 * MAX_ROWS
_ROW_SOURCES = ("rows", "select")  # the body's fields an upload replaces
_CLOSE = {"connection": "close"}  # the rest of the body is not read


class _Body(io.RawIOBase):
    """The request body as a file for a worker thread: each read waits for the event loop's
    next chunk, and more than `limit` bytes is refused."""

    def __init__(self, chunks: AsyncIterator[bytes], limit: int):
        self._chunks, self._limit, self._seen = chunks, limit, 0
        self._pending, self._done = memoryview(b""), False

    def readable(self) -> bool:
        return True

    async def _next(self) -> bytes | None:
        try:
            return await self._chunks.__anext__()
        except StopAsyncIteration:
            return None

    def readinto(self, buffer: Any) -> int:
        while not self._pending and not self._done:
            chunk = anyio.from_thread.run(self._next)
            if chunk is None:
                self._done = True
                break
            self._seen += len(chunk)
            if self._seen > self._limit:
                raise PayloadTooLarge(f"request body exceeds {self._limit} bytes "
                                      "(PGW_MAX_UPLOAD_BYTES)", headers=_CLOSE)
            self._pending = memoryview(chunk)
        count = min(len(buffer), len(self._pending))
        buffer[:count] = self._pending[:count]
        self._pending = self._pending[count:]
        return count


def _lines(text: io.TextIOBase) -> Iterator[str]:
    number = 0
    while line := text.readline(MAX_LINE_CHARS + 1):
        number += 1
        if len(line) > MAX_LINE_CHARS:
            raise PayloadTooLarge(f"line {number} is longer than {MAX_LINE_CHARS} characters "
                                  "(the limit per line)", headers=_CLOSE)
        yield line


def _rows(body: _Body, fmt: files.Format, fields: set[str]) -> list[dict[str, Any]]:
    text = io.TextIOWrapper(io.BufferedReader(body), encoding="utf-8-sig", newline="")
    try:
        return files.rows_of(_lines(text), fmt, fields=fields, max_rows=MAX_ROWS)
    except UnicodeDecodeError:
        raise Invalid("the upload is not UTF-8 text", field="rows") from None


def _json(body: _Body, model: type[Model]) -> Model:
    data = body.readall()
    values = 1 + sum(data.count(mark) for mark in (b"[", b",", b":"))  # at least as many
    if values > MAX_JSON_VALUES:
        raise PayloadTooLarge(f"the JSON body has more than {MAX_JSON_VALUES} values (the "
                              "limit per body); send large uploads as CSV or JSON Lines")
    try:
        return model.model_validate_json(data)
    except ValidationError as exc:
        raise _request_error(exc, "body") from None


def _request_error(exc: ValidationError, where: str) -> RequestValidationError:
    return RequestValidationError([{**error, "loc": (where, *error["loc"])}
                                   for error in exc.errors()])


def _validated(model: type[Model], data: dict[str, Any]) -> Model:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise _request_error(exc, "query") from None


# how a query value becomes the body's value, by the field's JSON schema type
_NUMBERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "integer": (int, "an integer"), "number": (float, "a number")}


@functools.cache
def _query_types(model: type[BaseModel]) -> dict[str, str]:
    return {name: schema.get("type", "string")
            for name, schema in model.model_json_schema()["properties"].items()}


def _from_query(model: type[BaseModel], query: dict[str, str]) -> dict[str, Any]:
    types = _query_types(model)
    fields: dict[str, Any] = {}
    for name, value in query.items():
        if name in _ROW_SOURCES:
            raise Invalid(f"{name} cannot be given with an upload", field=name)
        convert, what = _NUMBERS.get(types.get(name, "string"), (str, "text"))
        try:
            fields[name] = convert(value)
        except ValueError:
            raise Invalid(f"{name} must be {what}", field=name) from None
    return fields


async def read(request: Request, model: type[Model]) -> Model:
    """The body as `model`: JSON, or rows as CSV or JSON Lines with the other fields in the
    query string. Call only once the caller may use the route."""
    runtime = request.app.state.runtime
    body = _Body(request.stream().__aiter__(), runtime.settings.max_upload_bytes)
    fmt = files.format_of_media_type(request.headers.get("content-type"))
    if fmt is None:
        if request.query_params:
            name = next(iter(request.query_params))
            raise Invalid("query parameters go with CSV or JSON Lines uploads; a JSON "
                          "body carries its own", field=name)
        return await anyio.to_thread.run_sync(_json, body, model)
    # everything but the rows first: the record type says which columns to keep
    target = _validated(model, {**_from_query(model, dict(request.query_params)),
                                "rows": [{}]})
    spec = service.spec_for(runtime.policy, target.record_type)
    fields = {name for name, how in spec.direct_identifiers.items() if how == "pseudonymize"}
    fields |= {*spec.quasi_identifiers, *spec.sensitive}
    rows = await anyio.to_thread.run_sync(_rows, body, fmt, fields)
    if not rows:
        raise Invalid("the upload has no rows; give at least 1", field="rows")
    return target.model_copy(update={"rows": rows})
