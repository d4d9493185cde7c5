"""The staff console at /console: its pages, its static files, and where a person lands."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Response
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from app.auth.scopes import Scope
from app.console import (
    access_pages,
    audit_pages,
    dsr_pages,
    governance_pages,
    signin,
    subject_pages,
)
from app.console.guard import ConsoleRoute, SignedIn, error_page
from app.errors import add_error_page

# Console routes that need no scope: signing in and out, the language switch, and the landing
# page that sends a person to the first page their scopes open. Every other console route
# declares its scope (`Needs`), as every API route does (tests/test_routes.py).
UNSCOPED_PATHS = ("/console/login", "/console/login/dev", "/console/login/oidc",
                  "/console/callback", "/console/logout", "/console/lang", "/console")
home = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)
STATIC = Path(__file__).parent / "static"


@home.get("")
def landing(staff: SignedIn) -> Response:
    """The first page this person may use."""
    for scope, page in ((Scope.DSR_MANAGE, "dsr"), (Scope.ACCESS_APPROVE, "access"),
                        (Scope.AUDIT_READ, "audit")):
        if staff.caller.has(scope):
            return RedirectResponse(f"/console/{page}", status_code=303)
    return RedirectResponse("/console/audit", status_code=303)  # refused there, audited


def install(app: FastAPI) -> None:
    add_error_page(app, "/console", error_page)
    app.mount("/console/static", StaticFiles(directory=STATIC), name="console-static")
    for router in (signin.router, home, dsr_pages.router, access_pages.router,
                   audit_pages.router, governance_pages.router, subject_pages.router):
        app.include_router(router)
