"""Base for every request and response body: unknown fields are rejected, not ignored."""

import re
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict

_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?"
                           r"(Z|[+-]\d{2}:?\d{2})?)?$")


def _iso_only(value: Any) -> Any:
    # Lax validation would read "0.5" as seconds since 1970; a date-time must look like one.
    if isinstance(value, str) and not _ISO_DATETIME.match(value):
        raise ValueError("expected an ISO 8601 date-time, e.g. 2026-11-22T10:00:00Z")
    return value


IsoDateTime = Annotated[datetime, BeforeValidator(_iso_only)]


class StrictModel(BaseModel):
    # strict: no coercion (false is not 0.0, "1" is not 1); JSON still parses ISO datetimes
    model_config = ConfigDict(extra="forbid", strict=True)
