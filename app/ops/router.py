"""Liveness, readiness and metrics: the only routes without a scope."""

from __future__ import annotations

from datetime import timedelta

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from app.db import migration_state, ping

router = APIRouter(tags=["operations"])
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is alive."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request) -> JSONResponse:
    """Ready to serve: database reachable and migrated, policies loaded, keys available."""
    runtime = request.app.state.runtime
    problems: list[str] = []
    try:
        ping(runtime.engine)
        current, head = migration_state(runtime.engine)
        if current != head:
            problems.append(f"database at migration {current}, expected {head}: run pgw migrate")
    except SQLAlchemyError:
        problems.append("database unreachable")
    problems.extend(runtime.key_problems)
    status = "sealed" if runtime.sealed else "ready" if not problems else "not ready"
    body = {"status": status, "reasons": problems,
            "policy_version": runtime.policy.version}
    return JSONResponse(body, status_code=200 if not problems else 503)


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


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    body = request.app.state.metrics.render() + _gauges(request)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
