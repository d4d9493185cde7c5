"""Liveness, readiness and metrics: the only routes without a scope."""

from __future__ import annotations

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


@router.get("/metrics", response_class=Response)
def metrics(request: Request) -> Response:
    return Response(request.app.state.metrics.render(), media_type=CONTENT_TYPE_LATEST)
