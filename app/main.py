"""The application factory. `app.main:app` is the ASGI application uvicorn serves."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import anyio
from fastapi import FastAPI

from app import logs
from app.access.router import router as access_router
from app.audit.router import router as audit_router
from app.auth.jwks import AuthMetrics, refreshing
from app.auth.limits import PII_CHARACTERS, Limit, RateLimiter, parse_limits
from app.auth.tokens import load_verifier
from app.config import ConfigError, Settings, load_settings
from app.consent.router import router as consent_router
from app.console.router import install as install_console
from app.datasets.router import router as datasets_router
from app.dsr.router import holds_router
from app.dsr.router import router as dsr_router
from app.errors import add_error_page, install_handlers
from app.keys.router import router as keys_router
from app.middleware import BodyLimit, RejectNul, RequestContext
from app.openapi import install_openapi
from app.ops.docs import install_docs
from app.ops.metrics import make_metrics
from app.ops.router import router as ops_router
from app.pii.router import router as pii_router
from app.pii.service import start_engine
from app.policy.router import router as policy_router
from app.privacy import web as privacy_web
from app.privacy.account import router as privacy_account_router
from app.privacy.router import router as privacy_router
from app.records.router import router as records_router
from app.records.stateless import router as protect_router
from app.runtime import freeze_startup_heap, open_runtime
from app.webhooks.router import router as webhooks_router

logger = logging.getLogger("pgw")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    if not settings.is_dev:
        from app.ops.setup import problems

        found = problems(settings, serving=True)  # all of them in one message
        if found:
            raise ConfigError(*found)
    metrics = make_metrics()
    auth_metrics = AuthMetrics.register(metrics.registry)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = open_runtime(settings, on_audit_failure=metrics.audit_failures.inc)
        app.state.runtime = runtime
        metrics.observe(runtime.write_lane)
        metrics.observe(runtime.read_lane)
        # Load the PII engine and its scan helper now (once per process), not on the first
        # requests' time and cores.
        await anyio.to_thread.run_sync(partial(
            start_engine, settings.nlp_model_en,
            parallel_min_chars=settings.pii_parallel_min_chars))
        app.state.token_verifier = verifier = load_verifier(
            settings, create_dev_secret=settings.is_dev, metrics=auth_metrics)
        worker = None
        if settings.is_dev and settings.worker_in_serve:
            from app.jobs.worker import start_thread

            worker = start_thread(runtime)
        freeze_startup_heap()
        logger.info("privacy gateway started")
        try:
            async with refreshing(verifier.key_set):  # the identity provider's keys, if any
                yield
        finally:
            if worker is not None:
                thread, stop = worker
                stop.set()
                await anyio.to_thread.run_sync(thread.join)
            runtime.close()

    app = FastAPI(
        title="Privacy gateway",
        version="0.1.0",
        summary="Consent, purpose limitation, PII protection and a tamper-evident audit log.",
        lifespan=lifespan,
        docs_url=None,  # served from packaged assets by install_docs, not from a CDN
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    limits = parse_limits(settings.rate_limits)
    if settings.pii_chars_per_second:
        limits[PII_CHARACTERS] = Limit(rate=settings.pii_chars_per_second,
                                       burst=2 * settings.pii_chars_per_second)
    app.state.rate_limiter = RateLimiter(limits)
    install_handlers(app)
    app.include_router(records_router)
    app.include_router(ops_router)
    app.include_router(audit_router)
    app.include_router(pii_router)
    app.include_router(keys_router)
    app.include_router(policy_router)
    app.include_router(consent_router)
    app.include_router(protect_router)
    app.include_router(access_router)
    app.include_router(dsr_router)
    app.include_router(holds_router)
    app.include_router(webhooks_router)
    app.include_router(datasets_router)
    app.include_router(privacy_router)
    app.include_router(privacy_account_router)
    add_error_page(app, privacy_web.PATH, privacy_web.error_page)
    install_console(app)
    install_docs(app, title=app.title)
    install_openapi(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes,
                       uploads={"/v1/datasets/": settings.max_upload_bytes,
                                "/v1/records/batch": (settings.max_batch_bytes,
                                                      "PGW_MAX_BATCH_BYTES")})
    app.add_middleware(RejectNul)
    app.add_middleware(RequestContext, metrics=metrics, hsts=not settings.is_dev)
    return app


def _app_from_environment() -> FastAPI:
    settings = load_settings()
    logs.configure(settings.log_level)
    return create_app(settings)


app = _app_from_environment()
