"""Who is signed in to the console, what they may do, and the CSRF check of every form.

A person's session maps to the same `Caller` a bearer token gives the API, and pages call the
domain services with it: the same scopes decide, and the audit log names them as the actor.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import Depends, Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from app.auth.guard import audit_denial, spend
from app.auth.scopes import Scope
from app.config import Settings
from app.console import sessions
from app.console.sessions import Staff
from app.errors import Forbidden, GatewayError, Unauthorized
from app.web import i18n, pages

COOKIE = "pgw_console"
LOGIN_COOKIE = "pgw_console_login"
TEMPLATES = pages.environment(Path(__file__).parent / "templates")


class SignInRequired(Unauthorized):
    type, title = "sign-in-required", "Sign-in required"


class CsrfRefused(Forbidden):
    type, title = "csrf-refused", "Form refused"


class ConsoleRoute(APIRoute):
    """Errors of console pages answer as pages: a sign-in page for a reader not signed in,
    otherwise the problem's title and detail (the session's rollback has run by then)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                return await handler(request)
            except SignInRequired:
                if request.method == "GET":
                    return RedirectResponse("/console/login", status_code=303)
                raise
            except GatewayError as exc:
                return error_page(request, exc)

        return run


def error_page(request: Request, exc: GatewayError) -> Response:
    """The console's page for an error: its status's title in the reader's language, and the
    problem's detail."""
    heading = i18n.catalogue(i18n.language(request)).get(f"status_{exc.status}", exc.title)
    return pages.render(TEMPLATES, request, "error.html", status=exc.status, error=exc,
                        heading=heading, staff=None)


async def signed_in(request: Request) -> Staff:
    """The person signed in with this browser's session cookie."""
    token = request.cookies.get(COOKIE)
    if not token:
        raise SignInRequired("sign in first")
    runtime = request.app.state.runtime
    settings: Settings = request.app.state.settings

    def look() -> Staff | None:
        with runtime.transaction() as session:
            return sessions.find(session, settings, token=token,
                                 request_id=getattr(request.state, "request_id", None))

    staff = await anyio.to_thread.run_sync(look)
    if staff is None:
        raise SignInRequired("the session has ended; sign in again")
    await spend(request, staff.caller)
    return staff


SignedIn = Annotated[Staff, Depends(signed_in)]


class Needs:
    """A console page that needs one of these scopes; a refusal is audited, as the API's."""

    def __init__(self, *scopes: Scope):
        self.scopes = scopes

    async def __call__(self, request: Request, staff: SignedIn) -> Staff:
        if not any(staff.caller.has(scope) for scope in self.scopes):
            required = " ".join(s.value for s in self.scopes)
            await audit_denial(request, staff.caller, action="auth.scope_denied",
                               details={"required": required})
            raise Forbidden(f"this page needs the scope {' or '.join(self.scopes)}")
        return staff


async def checked_form(request: Request, staff: SignedIn) -> dict[str, str]:
    """The posted form, read only after the session was found, with its CSRF token checked."""
    try:
        values = await pages.read_form(request)
    except pages.FormRefused as exc:
        await audit_denial(request, staff.caller, action="console.form_refused",
                           details={"reason": exc.detail})
        raise
    if not pages.same_token(values.pop("csrf", None), staff.csrf):
        await audit_denial(request, staff.caller, action="console.csrf_refused", details={})
        raise CsrfRefused("the form's security token is missing or stale; reload the page")
    return values


Form = Annotated[dict[str, str], Depends(checked_form)]
