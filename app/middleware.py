"""ASGI middleware: request ids, body size limit, access log and metrics."""

from __future__ import annotations

import logging
import re
import time
import uuid
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.errors import Invalid, PayloadTooLarge, render
from app.ops.metrics import Metrics

REQUEST_ID_HEADER = b"x-request-id"
_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:-]{1,128}$")
access_log = logging.getLogger("pgw.access")


class RejectNul:
    """422 for a NUL character in the path or query: no text we store or look up holds one,
    and PostgreSQL refuses it in every string (request bodies are checked by their models)."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            where = ("path" if "\x00" in scope["path"] else
                     "query" if b"%00" in scope["query_string"].lower() or
                     b"\x00" in scope["query_string"] else None)
            if where is not None:
                error = Invalid(f"the {where} contains a NUL character", field=where)
                await render(error)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class BodyLimit:
    """413 for bodies over the limit, by Content-Length or while streaming a chunked body.
    Paths under an upload prefix (dataset uploads) have a limit of their own."""

    def __init__(self, app: ASGIApp, *, max_bytes: int,
                 uploads: dict[str, int | tuple[int, str]] | None = None):
        self.app, self.max_bytes, self.uploads = app, max_bytes, uploads or {}

    def _limit(self, path: str) -> tuple[int, str]:
        for prefix, limit in self.uploads.items():
            if path.startswith(prefix):
                # a bare number is an upload limit; else (limit, the setting that sets it)
                return limit if isinstance(limit, tuple) else (limit, "PGW_MAX_UPLOAD_BYTES")
        return self.max_bytes, "PGW_MAX_BODY_BYTES"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit, setting = self._limit(scope["path"])
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            error = PayloadTooLarge(f"request body exceeds {limit} bytes ({setting})",
                                    headers={"connection": "close"})
            await render(error)(scope, receive, send)
            return
        seen = 0

        async def limited_receive() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    # FastAPI re-raises HTTPExceptions from body reading; our handler renders it.
                    raise HTTPException(413, f"request body exceeds {limit} bytes ({setting})")
            return message

        await self.app(scope, limited_receive, send)


# Sent on every response: an API of personal data is never cached, sniffed, framed or
# embedded elsewhere, and runs no script (the docs page at /docs sends a policy of its own
# that allows its packaged script; app/ops/docs.py).
SECURITY_HEADERS = (
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"interest-cohort=()"),
)
API_CSP = (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'")
HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")


def _security_headers(headers: list[tuple[bytes, bytes]], *,
                      hsts: bool) -> list[tuple[bytes, bytes]]:
    names = {name.lower() for name, _ in headers}
    added = [h for h in SECURITY_HEADERS if h[0] not in names]
    if b"cache-control" not in names:
        added.append((b"cache-control", b"no-store"))
    if API_CSP[0] not in names:
        added.append(API_CSP)
    if hsts:
        added.append(HSTS)
    return [*headers, *added]


class RequestContext:
    """Accepts or makes X-Request-ID, echoes it, adds the security headers, logs the request
    and counts it."""

    def __init__(self, app: ASGIApp, *, metrics: Metrics, hsts: bool = False):
        self.app, self.metrics, self.hsts = app, metrics, hsts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(REQUEST_ID_HEADER, b"")
        request_id = given.decode() if _REQUEST_ID.match(given) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [h for h in message.get("headers", []) if h[0] != REQUEST_ID_HEADER]
                headers = _security_headers(headers, hsts=self.hsts)
                message = {**message, "headers": [*headers,
                                                  (REQUEST_ID_HEADER, request_id.encode())]}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            self._observe(scope, status, time.perf_counter() - started, request_id)

    def _observe(self, scope: Scope, status: int, elapsed: float, request_id: str) -> None:
        route: Any = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        method = scope["method"]
        self.metrics.requests.labels(method, template, str(status)).inc()
        self.metrics.latency.labels(method, template).observe(elapsed)
        access_log.info("request", extra={
            "request_id": request_id, "method": method, "route": template, "status": status,
            "duration_ms": round(elapsed * 1000, 2),
        })
