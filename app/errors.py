"""One error base, one handler, one JSON shape: RFC 9457 problem details for every error."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, ClassVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

logger = logging.getLogger("pgw.errors")

PROBLEM_BASE = "urn:pgw:problem:"
PROBLEM_MEDIA_TYPE = "application/problem+json"

_TITLES = {
    400: "Bad request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not found",
    405: "Method not allowed",
    410: "Gone",
    412: "Precondition failed",
    409: "Conflict",
    413: "Content too large",
    415: "Unsupported media type",
    422: "Unprocessable content",
    429: "Too many requests",
    500: "Internal server error",
    503: "Service unavailable",
}
_HTTP_TYPES = {
    400: "bad-request",
    401: "unauthorized",
    403: "forbidden",
    404: "not-found",
    405: "method-not-allowed",
    409: "conflict",
    413: "payload-too-large",
    415: "unsupported-media-type",
    422: "validation-error",
    429: "rate-limited",
    503: "service-unavailable",
}


PROBLEM_MEMBERS = frozenset({"type", "title", "status", "detail", "instance"})


class GatewayError(Exception):
    """Base of every error a client may see. `type` is a stable machine-readable slug."""

    status: int = 400
    type: str = "bad-request"
    title: str = "Bad request"
    answered: ClassVar[bool] = True  # a client may receive it (listed in `problem_types`)

    def __init__(self, detail: str, *, headers: dict[str, str] | None = None, **extra: Any):
        super().__init__(detail)
        clash = PROBLEM_MEMBERS & extra.keys()
        if clash:  # the problem's own members cannot be overwritten by extensions
            raise ValueError(f"reserved problem members: {sorted(clash)}")
        self.detail = detail
        self.headers = headers
        self.extra = extra

    @classmethod
    def problem_types(cls) -> tuple[str, ...]:
        """Every `type` this error can carry, for the OpenAPI document."""
        return (cls.type,)


class Unauthorized(GatewayError):
    status, type, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str):
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


class Forbidden(GatewayError):
    status, type, title = 403, "forbidden", "Forbidden"


class InsufficientScope(Forbidden):
    type, title = "insufficient-scope", "Insufficient scope"


class NotFound(GatewayError):
    status, type, title = 404, "not-found", "Not found"


class Conflict(GatewayError):
    status, type, title = 409, "conflict", "Conflict"


class Invalid(GatewayError):
    """422 naming the offending fields: `errors=[{"field", "reason"}]`."""

    status, type, title = 422, "validation-error", "Unprocessable content"

    def __init__(self, detail: str, *, field: str | None = None, errors: list[dict[str, str]]
                 | None = None, **extra: Any):
        if errors is None and field is not None:
            errors = [{"field": field, "reason": detail}]
        super().__init__(detail, errors=errors or [], **extra)


class PayloadTooLarge(GatewayError):
    status, type, title = 413, "payload-too-large", "Content too large"


class ServiceUnavailable(GatewayError):
    status, type, title = 503, "service-unavailable", "Service unavailable"


class AuditWriteFailed(GatewayError):
    status, type, title = 500, "audit-write-failed", "Audit log unavailable"


class AuditLogDamaged(GatewayError):
    """The stored audit log cannot answer: a part of it was tampered with (`pgw audit verify`
    says which)."""

    status, type, title = 500, "audit-log-damaged", "Audit log damaged"


class DatabaseUnavailable(ServiceUnavailable):
    type, title = "database-unavailable", "Database unavailable"


class DatabaseBusy(ServiceUnavailable):
    type, title = "database-busy", "Database busy"


class StorageFull(ServiceUnavailable):
    type, title = "storage-full", "Storage full"


# What any request working with the database may answer with.
DATABASE_PROBLEMS: tuple[type[GatewayError], ...] = (DatabaseUnavailable, DatabaseBusy,
                                                     StorageFull, AuditWriteFailed)


def database_error(exc: BaseException) -> GatewayError | None:
    """The 503 a database failure means for the client (an outage, a full disk, no free
    connection, a lock or deadlock to retry), or None for a defect. Only fixed texts: the
    driver's message may quote values."""
    from sqlalchemy import exc as sa

    if isinstance(exc, sa.TimeoutError):
        return DatabaseBusy("no database connection became free in time; try again",
                            headers={"Retry-After": "1"})
    if not isinstance(exc, sa.DBAPIError):
        return None
    message = str(exc.orig).lower()
    sqlstate = str(getattr(exc.orig, "sqlstate", "") or "")
    if sqlstate == "53100" or any(text in message for text in (
            "database or disk is full", "no space left on device", "could not extend file",
            "disk i/o error")):
        return StorageFull("the database's storage is full, so nothing was changed",
                           headers={"Retry-After": "30"})
    if sqlstate.startswith("40") or "database is locked" in message:
        return DatabaseBusy("the database was busy (lock or deadlock); nothing was changed, "
                            "try again", headers={"Retry-After": "1"})
    if isinstance(exc, sa.OperationalError | sa.InterfaceError) or exc.connection_invalidated:
        return DatabaseUnavailable("the database cannot be reached; nothing was changed",
                                   headers={"Retry-After": "5"})
    return None


PROBLEM_SCHEMA_NAME = "Problem"
PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": PROBLEM_SCHEMA_NAME,
    "description": "RFC 9457 problem details; `type` is stable and machine-readable: branch on "
                   "it. Some problems add members (`errors`, `required_scope`, ...).",
    "required": ["type", "title", "status"],
    "properties": {"type": {"type": "string", "pattern": f"^{PROBLEM_BASE}[a-z0-9-]+$"},
                   "title": {"type": "string"},
                   "status": {"type": "integer"}, "detail": {"type": "string"},
                   "instance": {"type": "string"},
                   "errors": {"type": "array", "items": {"type": "object"}}},
}


def problem_response(status: int, types: list[str]) -> dict[str, Any]:
    """The OpenAPI response entry of a status: the problem schema, its `type` one of these."""
    uris = sorted({PROBLEM_BASE + type_ for type_ in types})
    listed = ", ".join(f"`{uri}`" for uri in uris)
    return {"description": f"{_TITLES.get(status, 'Error')}: a problem of type {listed}",
            "content": {PROBLEM_MEDIA_TYPE: {"schema": {"allOf": [
                {"$ref": f"#/components/schemas/{PROBLEM_SCHEMA_NAME}"},
                {"properties": {"type": {"enum": uris}}}]}}}}


def problems(*errors: type[GatewayError]) -> dict[int | str, dict[str, Any]]:
    """A route's `responses=`: the problems its own work may answer with. Those of its
    dependencies (guard, session, keyring) and of the middleware are added by `app.openapi`."""
    by_status: dict[int, list[str]] = {}
    for error in errors:
        by_status.setdefault(error.status, []).extend(error.problem_types())
    return {status: problem_response(status, types) for status, types in by_status.items()}


def _generic_type(status: int) -> str | None:
    return _HTTP_TYPES.get(status) or ("internal-error" if status == 500 else None)


def problem_types() -> list[dict[str, Any]]:
    """Every problem type the service answers with, for the OpenAPI document's
    `x-problem-types` (clients map them to exception classes): each `GatewayError` subclass
    loaded and each type the handlers make, with its status, title and the generic type of its
    status that it refines. The routers import every module that raises one, so the list does
    not depend on what else a process has imported (tests/client checks it)."""
    found: dict[str, tuple[int, str]] = {
        type_: (status, _TITLES[status]) for status, type_ in _HTTP_TYPES.items()}
    found["internal-error"] = (500, _TITLES[500])
    classes: list[type[GatewayError]] = [GatewayError]
    while classes:
        cls = classes.pop()
        if cls.answered:
            found.setdefault(cls.type, (cls.status, cls.title))
        classes.extend(cls.__subclasses__())
    catalogue = []
    for type_, (status, title) in sorted(found.items()):
        entry: dict[str, Any] = {"type": PROBLEM_BASE + type_, "status": status, "title": title}
        generic = _generic_type(status)
        if generic is not None and generic != type_:
            entry["refines"] = PROBLEM_BASE + generic
        catalogue.append(entry)
    return catalogue


def problem(status: int, type_: str, title: str, detail: str | None = None, *,
            headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    body: dict[str, Any] = {"type": PROBLEM_BASE + type_, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    body.update(extra)
    return JSONResponse(body, status_code=status, headers=headers, media_type=PROBLEM_MEDIA_TYPE)


def _field_name(loc: tuple[Any, ...]) -> tuple[str, str]:
    where = str(loc[0]) if loc else "body"
    rest = [str(part) for part in loc[1:]]
    return where, ".".join(rest) if rest else where


def _validation_errors(exc: RequestValidationError) -> list[dict[str, str]]:
    errors = []
    for err in exc.errors():
        where, field = _field_name(tuple(err.get("loc", ())))
        reason = str(err.get("msg", "invalid value"))
        if err.get("type") == "extra_forbidden":
            reason = "unknown field"
        errors.append({"field": field, "in": where, "reason": reason})
    return errors


# A site's error page: (request, the error) -> an HTML response. Sites register theirs under
# their path prefix (`add_error_page`); a browser navigating there gets the page, not JSON.
ErrorPage = Callable[[Request, GatewayError], Response]


def add_error_page(app: FastAPI, prefix: str, page: ErrorPage) -> None:
    app.state.error_pages = [*getattr(app.state, "error_pages", []), (prefix, page)]


def wants_html(request: Request) -> bool:
    """A browser's navigation (it asks for text/html); API clients ask for JSON or anything."""
    return "text/html" in request.headers.get("accept", "").lower()


def _page(request: Request, exc: GatewayError) -> Response | None:
    path = request.url.path
    registered: list[tuple[str, ErrorPage]] = getattr(request.app.state, "error_pages", [])
    for prefix, page in registered:
        if (path == prefix or path.startswith(prefix + "/")) and wants_html(request):
            response = page(request, exc)
            for name, value in (exc.headers or {}).items():
                response.headers.setdefault(name, value)
            return response
    return None


async def _gateway_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, GatewayError)  # noqa: S101 - registered for GatewayError only
    if exc.status == 503:  # the service's limits or its database's state: expected, retried
        logger.warning("request refused: %s (%s)", exc.type, exc.detail)
    elif exc.status >= 500:
        logger.error("request failed: %s (%s)", exc.type, exc.detail)
    return _page(request, exc) or render(exc)


def render(exc: GatewayError) -> JSONResponse:
    """The problem response for an error (also an ASGI app, for middleware to send)."""
    return problem(exc.status, exc.type, exc.title, exc.detail, headers=exc.headers, **exc.extra)


async def _validation_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    errors = _validation_errors(exc)
    fields = ", ".join(e["field"] for e in errors[:5])
    invalid = Invalid(f"invalid request: {fields}", errors=errors)
    return _page(request, invalid) or render(invalid)


class _HttpError(GatewayError):
    """Starlette's HTTP errors (no route, wrong method) in the shape of ours."""

    def __init__(self, status: int, detail: str | None, headers: dict[str, str] | None):
        super().__init__(detail or "", headers=headers)
        self.status, self.type = status, _HTTP_TYPES.get(status, "error")
        self.title = _TITLES.get(status, "Error")


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    status = exc.status_code
    detail = exc.detail if isinstance(exc.detail, str) else None
    if status == 404 and detail == "Not Found":
        detail = "no such resource"
    page = _page(request, _HttpError(status, detail, getattr(exc, "headers", None)))
    return page or problem(status, _HTTP_TYPES.get(status, "error"), _TITLES.get(status, "Error"),
                           detail, headers=getattr(exc, "headers", None))


async def _database_error(request: Request, exc: Exception) -> JSONResponse:
    # Handled here rather than by the catch-all, which re-raises: the server would then drop
    # the keep-alive connection after the response.
    known = database_error(exc)
    if known is None:
        return await _unhandled(request, exc)
    logger.warning("request failed: %s (%s)", known.type, type(exc).__name__)
    return render(known)


async def _unhandled(request: Request, exc: Exception) -> JSONResponse:
    # Never echo the exception: it may carry values or configuration. This handler runs outside
    # the request-id middleware, so it sets the header itself.
    request_id = getattr(request.state, "request_id", None)
    logger.exception("unhandled error", exc_info=exc, extra={"request_id": request_id})
    return problem(500, "internal-error", _TITLES[500], "the request could not be completed",
                   headers={"X-Request-ID": request_id} if request_id else None)


def install_handlers(app: FastAPI) -> None:
    app.add_exception_handler(GatewayError, _gateway_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(SQLAlchemyError, _database_error)
    app.add_exception_handler(Exception, _unhandled)
