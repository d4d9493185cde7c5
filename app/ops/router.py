"""Liveness, readiness and metrics: the only routes without a scope."""

from __future__ import annotations

from datetime import timedelta

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from app.auth.guard import RequireScope
from app.auth.scopes import Scope
from app.ops import readiness

router = APIRouter(tags=["operations"])
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is alive. Answered on the event loop: it waits for no thread and no
    database connection."""
    return {"status": "ok"}


# Readiness checks run on threads of their own, never queued behind requests.
_PROBES = anyio.CapacityLimiter(2)


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Ready to serve: database reachable, migrated and writable, audit log appendable, keys
    available and right, disk left. Answers within PGW_READINESS_TIMEOUT_SECONDS whatever
    the database does."""
    runtime = request.app.state.runtime
    timeout = runtime.settings.readiness_timeout_seconds
    try:
        with anyio.fail_after(timeout):
            problems = await anyio.to_thread.run_sync(readiness.problems, runtime,
                                                      limiter=_PROBES, abandon_on_cancel=True)
    except TimeoutError:
        problems = [f"database did not answer within {timeout:g} s"]
    problems = [*runtime.key_problems, *problems]
    status = "sealed" if runtime.sealed else "ready" if not problems else "not ready"
    body = {"status": status, "reasons": problems,
            "policy_version": runtime.policy.version}
    headers = {"Retry-After": "5"} if problems else None
    return JSONResponse(body, status_code=200 if not problems else 503, headers=headers)


def _gauges(request: Request) -> bytes:
    """Figures read from the database at scrape time, so every worker reports the same."""
    from app.dsr.service import deadline_counts
    from app.jobs.queue import counts

    runtime = request.app.state.runtime
    try:
        with runtime.read_session_factory() as session:
            dsr = deadline_counts(session, soon=timedelta(
                days=runtime.settings.dsr_due_soon_days))
            jobs = counts(session)
    except SQLAlchemyError:
        return b""
    lines = [
        "# HELP pgw_dsr_overdue Open data-subject requests past their legal deadline",
        "# TYPE pgw_dsr_overdue gauge", f"pgw_dsr_overdue {dsr['overdue']}",
        "# HELP pgw_dsr_due_soon Open data-subject requests due within PGW_DSR_DUE_SOON_DAYS",
        "# TYPE pgw_dsr_due_soon gauge", f"pgw_dsr_due_soon {dsr['due_soon']}",
        "# HELP pgw_jobs Background jobs by state", "# TYPE pgw_jobs gauge",
        *(f'pgw_jobs{{state="{state}"}} {jobs.get(state, 0)}'
          for state in ("queued", "running", "done", "failed")),
    ]
    return ("\n".join(lines) + "\n").encode()


async def _metrics_caller(request: Request) -> None:
    """With PGW_METRICS_REQUIRE_TOKEN, a bearer token with `metrics:read` (checked here rather
    than as a declared dependency: the route is public by default)."""
    if not request.app.state.settings.metrics_require_token:
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    credentials = HTTPAuthorizationCredentials(scheme=scheme, credentials=token.strip()) \
        if scheme.lower() == "bearer" and token.strip() else None
    await RequireScope(Scope.METRICS_READ)(request, credentials)


@router.get("/metrics", response_class=Response)
async def metrics(request: Request) -> Response:
    await _metrics_caller(request)
    gauges = await anyio.to_thread.run_sync(_gauges, request, limiter=_PROBES)
    body = request.app.state.metrics.render() + gauges
    return Response(body, media_type=CONTENT_TYPE_LATEST)
