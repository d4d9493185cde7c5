"""Base for every request and response body: unknown fields are rejected, not ignored."""

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


def _nul_at(value: Any, path: str) -> str | None:
    """Where a NUL character hides in a value (keys included), if anywhere."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            found = _nul_at(key, path) or _nul_at(item, f"{path}.{key}")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _nul_at(item, f"{path}[{index}]")
            if found:
                return found
    return None


class StrictModel(BaseModel):
    # strict: no coercion (false is not 0.0, "1" is not 1); JSON still parses ISO datetimes
    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def _no_nul(cls, data: Any) -> Any:
        # No text we keep holds a NUL, and PostgreSQL refuses one in any string.
        if isinstance(data, dict):
            found = _nul_at(data, "")
            if found is not None:
                raise ValueError(f"{found.lstrip('.') or 'a key'} contains a NUL character")
        return data
