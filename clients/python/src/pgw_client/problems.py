"""Problem details (RFC 9457) raised as exceptions. The gateway's own problem types have a
class each in `pgw_client.errors`, generated from the OpenAPI document; any other type, or an
error response that is not problem JSON (a proxy's 502 page), raises `UnknownProblemError`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import httpx

_MEMBERS = frozenset({"type", "title", "status", "detail", "instance", "errors"})


@dataclass(frozen=True)
class FieldError:
    """One offending field of a 422: its name, where it was (`body`, `query`, ...), why."""

    field: str
    reason: str
    location: str | None = None


class ProblemError(Exception):
    """An error answer of the gateway. Branch on the class or on `type`, never on `detail`."""

    problem_type: ClassVar[str] = "about:blank"

    def __init__(self, *, type: str, title: str, status: int, detail: str | None = None,
                 errors: list[FieldError] | None = None, extensions: dict[str, Any] | None
                 = None, request_id: str | None = None, retry_after: str | None = None):
        super().__init__(f"{status} {title}: {detail}" if detail else f"{status} {title}")
        self.type = type
        self.title = title
        self.status = status
        self.detail = detail
        self.errors = errors or []
        self.extensions = extensions or {}
        self.request_id = request_id
        self.retry_after = retry_after


class UnknownProblemError(ProblemError):
    """A problem type this client does not know (a newer gateway, or not problem JSON)."""


def _field_errors(raw: Any) -> list[FieldError]:
    if not isinstance(raw, list):
        return []
    return [FieldError(field=str(item.get("field", "")), reason=str(item.get("reason", "")),
                       location=item.get("in")) for item in raw if isinstance(item, dict)]


def problem_from(response: httpx.Response, classes: dict[str, type[ProblemError]]) \
        -> ProblemError:
    """The exception an error response stands for."""
    try:
        body = response.json()
    except ValueError:
        body = None
    headers = {"request_id": response.headers.get("x-request-id"),
               "retry_after": response.headers.get("retry-after")}
    if not isinstance(body, dict) or not isinstance(body.get("type"), str):
        return UnknownProblemError(type="about:blank", title=response.reason_phrase or "Error",
                                   status=response.status_code, **headers)
    cls = classes.get(body["type"], UnknownProblemError)
    status = body.get("status")
    return cls(type=body["type"], title=str(body.get("title", "")),
               status=status if isinstance(status, int) else response.status_code,
               detail=body.get("detail"), errors=_field_errors(body.get("errors")),
               extensions={k: v for k, v in body.items() if k not in _MEMBERS}, **headers)
