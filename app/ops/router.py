"""Liveness, readiness and metrics: the only routes without a scope."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

import anyio
import anyio.to_thread
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from prometheus_client import CONTENT_TYPE_LATEST
from sqlalchemy.exc import SQLAlchemyError

from app.auth.guard import RequireScope
from app.auth.scopes import Scope
from app.deps import RuntimeDep
from app.ops import readiness, workers
from app.runtime import Runtime
from app.schemas import ResponseModel

router = APIRouter(tags=["operations"])
PUBLIC_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})


class HealthOut(ResponseModel):
    status: Literal["ok"]


@router.get("/healthz", response_model=HealthOut)
async def healthz() -> HealthOut:
    """The process is alive. Answered on the event loop: it waits for no thread and no
    database connection."""
    return HealthOut.model_validate({"status": "ok"})


# Readiness checks run on threads of their own, never queued behind requests.
_PROBES = anyio.CapacityLimiter(2)


@router.get("/readyz")
async def readyz(request: Request, runtime: RuntimeDep) -> JSONResponse:
    """Ready to serve: database reachable, migrated and writable, audit log appendable, keys
    available and right, disk left. Answers within PGW_READINESS_TIMEOUT_SECONDS whatever
    the database does. Jobs queued with no live worker make it `degraded`: still 200 (the
    gateway serves), with the reason in `warnings` and the figures in `workers`."""
    timeout = runtime.settings.readiness_timeout_seconds
    alive: workers.Liveness | None = None
    try:
        with anyio.fail_after(timeout):
            problems, alive = await anyio.to_thread.run_sync(
                readiness.probe, runtime, limiter=_PROBES, abandon_on_cancel=True)
    except TimeoutError:
        problems = [f"database did not answer within {timeout:g} s"]
    problems = [*runtime.key_problems, *_identity_provider(request), *problems]
    warned = workers.warning(alive, stale=readiness.stale(runtime)) if alive else None
    warnings = [warned] if warned else []
    status = "sealed" if runtime.sealed else "not ready" if problems else \
        "degraded" if warnings else "ready"
    body = {"status": status, "reasons": problems, "warnings": warnings,
            "workers": alive.as_dict() if alive else None,
            "policy_version": runtime.policy.version}
    headers = {"Retry-After": "5"} if problems else None
    return JSONResponse(body, status_code=200 if not problems else 503, headers=headers)


def _identity_provider(request: Request) -> list[str]:
    """No token can be verified until the identity provider's keys have loaded once."""
    verifier = getattr(request.app.state, "token_verifier", None)
    key_set = getattr(verifier, "key_set", None)
    return key_set.problems() if key_set is not None else []


def _gauge(name: str, help: str, *values: tuple[str, float | str]) -> list[str]:
    return [f"# HELP {name} {help}", f"# TYPE {name} gauge",
            *(f"{name}{labels} {value}" for labels, value in values)]


def _gauges(runtime: Runtime) -> bytes:
    """Figures read from the database at scrape time, so every worker reports the same; and
    this process's own state (sealed, ready)."""
    from app.audit import tree
    from app.dsr.service import deadline_counts
    from app.jobs.queue import counts

    lines = _gauge("pgw_sealed", "1 when the process answering the scrape is sealed (no "
                   "usable key-encryption key)", ("", int(runtime.sealed)))
    try:
        problems = [*runtime.key_problems, *readiness.problems(runtime)]
    except Exception:  # noqa: BLE001 - whatever failed, the process is not ready
        problems = ["readiness probe failed"]
    lines += _gauge("pgw_ready", "1 when the process answering the scrape passes every "
                    "readiness check (see /readyz for the reasons when it does not)",
                    ("", int(not problems)))
    try:
        with runtime.read_session_factory() as session:
            dsr = deadline_counts(session, soon=timedelta(
                days=runtime.settings.dsr_due_soon_days))
            jobs = counts(session)
            alive = workers.liveness(session, stale=readiness.stale(runtime))
            waiting, lag = tree.integration_lag(session)
            audit_size = tree.tree_size(session)
    except SQLAlchemyError:
        return ("\n".join(lines) + "\n").encode()
    seen = "+Inf" if alive.last_seen_seconds is None else alive.last_seen_seconds
    lines += [
        *_gauge("pgw_dsr_overdue", "Open data-subject requests past their legal deadline",
                ("", dsr["overdue"])),
        *_gauge("pgw_dsr_due_soon", "Open data-subject requests at risk: due within "
                "PGW_DSR_DUE_SOON_DAYS", ("", dsr["due_soon"])),
        *_gauge("pgw_jobs", "Background jobs by state",
                *((f'{{state="{state}"}}', jobs.get(state, 0))
                  for state in ("queued", "running", "done", "failed"))),
        *_gauge("pgw_workers_alive", "Worker processes seen within PGW_WORKER_STALE_SECONDS",
                ("", alive.alive)),
        *_gauge("pgw_worker_last_seen_seconds", "Seconds since any worker was last seen "
                "(+Inf: none ever was)", ("", seen)),
        *_gauge("pgw_jobs_queued_without_worker", "Queued jobs while no worker is alive",
                ("", alive.stranded)),
        *_gauge("pgw_audit_pending", "Audit entries committed and not yet sequenced into the "
                "log", ("", waiting)),
        *_gauge("pgw_audit_integration_lag_seconds", "Age of the oldest audit entry waiting "
                "for the sequencer (0 when none waits)", ("", round(lag, 3))),
        *_gauge("pgw_audit_tree_size", "Entries in the audit log's Merkle tree",
                ("", audit_size)),
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
async def metrics(request: Request, runtime: RuntimeDep) -> Response:
    await _metrics_caller(request)
    gauges = await anyio.to_thread.run_sync(_gauges, runtime, limiter=_PROBES)
    body = request.app.state.metrics.render() + gauges
    return Response(body, media_type=CONTENT_TYPE_LATEST)
