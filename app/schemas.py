"""Base for every request and response body: unknown fields are rejected, not ignored."""

import math
import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, model_validator

_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
                           r"(Z|[+-]\d{2}:?\d{2})?)?$")


def _iso_only(value: Any) -> Any:
    # Lax validation would read "0.5" as seconds since 1970; a date-time must look like one.
    if isinstance(value, str) and not _ISO_DATETIME.match(value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-11-22T10:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]


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
