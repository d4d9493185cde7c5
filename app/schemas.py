"""Base for every request and response body: unknown fields are rejected, not ignored."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    # strict: no coercion (false is not 0.0, "1" is not 1); JSON still parses ISO datetimes
    model_config = ConfigDict(extra="forbid", strict=True)
