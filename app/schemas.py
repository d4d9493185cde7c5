"""Base for every request and response body: unknown fields are rejected, not ignored."""

import base64
import math
import re
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any, Generic, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

from app.clock import isoformat
from app.db import Position
from app.errors import Invalid

_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
                           r"(Z|[+-]\d{2}:?\d{2})?)?$")


def _iso_only(value: Any) -> Any:
    # Lax validation would read "0.5" as seconds since 1970; a date-time must look like one.
    if isinstance(value, str) and not _ISO_DATETIME.match(value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-11-22T10:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]


def rfc3339(moment: datetime) -> str:
    """The one form of a time on the wire, `clock.isoformat`'s: 2026-11-22T10:00:00.000000Z."""
    if moment.tzinfo is None:  # stored times are UTC; SQLite hands some back naive
        moment = moment.replace(tzinfo=UTC)
    return isoformat(moment)


def _as_datetime(value: Any) -> Any:
    # services give times as ISO strings or datetimes; either becomes a datetime here
    return datetime.fromisoformat(value) if isinstance(value, str) else value


Timestamp = Annotated[datetime, BeforeValidator(_as_datetime),
                      PlainSerializer(rfc3339, return_type=str),
                      WithJsonSchema({"type": "string", "format": "date-time",
                                      "examples": ["2026-11-22T10:00:00Z"]})]
"""A time in a response: always RFC 3339 in UTC with `Z`."""


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _bad_text(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    if _LONE_SURROGATE.search(text):  # a pair decodes to one character; a lone half cannot
        return "contains an unpaired UTF-16 surrogate (not valid Unicode text)"
    return None


def _invalid_at(value: Any, path: str) -> tuple[str, str] | None:
    """Where a value (keys included) holds what no stored text or number may: a NUL, a lone
    surrogate, an infinite or undefined number. (path, reason), or None."""
    if isinstance(value, str):
        reason = _bad_text(value)
        return (path, reason) if reason else None
    if isinstance(value, float) and not math.isfinite(value):
        return path, "is not a finite number"
    if isinstance(value, dict):
        for key, item in value.items():
            found = _invalid_at(key, path) or _invalid_at(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _invalid_at(item, f"{path}[{index}]")
            if found:
                return found
    return None


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
SUBJECT_ID_MAX = 255


def subject_id_problem(value: str) -> str | None:
    """Why a text cannot be a subject id (empty, too long, control characters, half a surrogate
    pair), or None. The one check every way in uses: API bodies, paths, console forms."""
    if not value:
        return "is empty"
    if len(value) > SUBJECT_ID_MAX:
        return f"is longer than {SUBJECT_ID_MAX} characters"
    if _CONTROL.search(value):
        return "contains a control character"
    return _bad_text(value)


def valid_subject_id(value: str) -> str:
    """The subject id, or a 422 naming `subject_id`."""
    reason = subject_id_problem(value)
    if reason is not None:
        raise Invalid(f"subject_id {reason}", field="subject_id")
    return value


def _subject_id(value: str) -> str:
    reason = subject_id_problem(value)
    if reason is not None:
        raise ValueError(f"subject_id {reason}")
    return value


SubjectIdCheck = AfterValidator(_subject_id)
SubjectId = Annotated[str, Field(min_length=1, max_length=SUBJECT_ID_MAX), SubjectIdCheck]
"""A subject id in a body, a query or a path."""


class StrictModel(BaseModel):
    # strict: no coercion (false is not 0.0, "1" is not 1); JSON still parses ISO datetimes
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _valid_text_and_numbers(cls, data: Any) -> Any:
        # No text we keep holds a NUL (PostgreSQL refuses one in any string) or half a
        # surrogate pair (it cannot be encoded as UTF-8); no number is infinite (JSON's 1e999).
        if isinstance(data, dict):
            found = _invalid_at(data, "")
            if found is not None:
                path, reason = found
                raise ValueError(f"{path.lstrip('.') or 'a key'} {reason}")
        return data


Item = TypeVar("Item")
Row = TypeVar("Row")


class ResponseModel(BaseModel):
    """Base of every response body: a field the model does not declare is an error (a 500 in
    the gateway, a failure in the tests), never silently sent or dropped."""

    model_config = ConfigDict(extra="forbid")


class Page(ResponseModel, Generic[Item]):
    """One page of a list: follow `next` (an opaque cursor, null on the last page) with
    `?cursor=`."""

    items: list[Item]
    next: str | None


def encode_cursor(key: str) -> str:
    """The opaque cursor standing for the last key of a page."""
    return base64.urlsafe_b64encode(key.encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> str | None:
    """The key a cursor from `encode_cursor` stands for; a 422 naming `cursor` otherwise."""
    if cursor is None:
        return None
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        key = ""
    if not key or encode_cursor(key) != cursor or _bad_text(key):
        raise Invalid("cursor is not one this API gave (use the `next` of the page before)",
                      field="cursor")
    return key


def _position(cursor: str | None) -> Position | None:
    key = decode_cursor(cursor)
    if key is None:
        return None
    at_text, _, row_id = key.partition(" ")
    try:
        at = datetime.fromisoformat(at_text) if _ISO_DATETIME.match(at_text) else None
    except ValueError:
        at = None
    if at is None or at.tzinfo is None or not row_id or len(row_id) > 40 \
            or not row_id.isprintable() or " " in row_id:
        raise Invalid("cursor is not one this API gave (use the `next` of the page before)",
                      field="cursor")
    return Position(at=at.astimezone(UTC), id=row_id)


def keyset_page(fetch: Callable[[Position | None, int], Sequence[Row]], *,
                position: Callable[[Row], Position], cursor: str | None,
                limit: int) -> tuple[list[Row], str | None]:
    """A page of a listing ordered by (time, id): `fetch(after, n)` gives the first n rows past
    `after` (see `db.keyset`). The cursor stands for the last row's time and id, so rows added
    or removed between pages neither shift nor repeat what follows."""
    rows = fetch(_position(cursor), limit + 1)
    page = list(rows[:limit])
    if len(rows) <= limit:
        return page, None
    last = position(page[-1])
    return page, encode_cursor(f"{rfc3339(last.at)} {last.id}")
