"""The public privacy centre, `/privacy`: server-rendered pages, not part of the API contract.

A page that shows or changes a person's data needs the session a one-time code opened
(`Person`); the subject comes from that session, never from the page. Every form carries a
CSRF token (`Form`, checked before the form is read further).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, BackgroundTasks, Depends, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth.guard import Caller
from app.config import Settings
from app.deps import KeyringDep, SessionDep, SettingsDep
from app.errors import Invalid
from app.keys.keyring import Keyring
from app.privacy import delivery, service, web

router = APIRouter(prefix=web.PATH, include_in_schema=False)
STATIC = {"privacy.css": "text/css", "privacy.js": "text/javascript",
          "logo.svg": "image/svg+xml"}
MAX_FORM_BYTES = 16 * 1024


def _caller(request: Request) -> Caller:
    return service.centre(getattr(request.state, "request_id", None))


def redirect(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303)


@dataclass(frozen=True)
class Person:
    subject_id: str
    token: str
    caller: Caller


def person(request: Request, session: SessionDep) -> Person | None:
    token = request.cookies.get(web.SESSION_COOKIE)
    subject_id = service.subject_of(session, token)
    if subject_id is None or token is None:
        return None
    return Person(subject_id, token, _caller(request))


MaybePerson = Annotated[Person | None, Depends(person)]


async def form(request: Request) -> dict[str, str]:
    """The urlencoded form, one value per name."""
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Invalid("the form is too large")
    parsed = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {name: values[0] for name, values in parsed.items()}


FormDep = Annotated[dict[str, str], Depends(form)]


async def person_form(request: Request, who: MaybePerson) -> dict[str, str]:
    """The form of a signed-in person's page; read only once the session is known, so a
    request without one is answered without reading its body."""
    return await form(request) if who is not None else {}


PersonFormDep = Annotated[dict[str, str], Depends(person_form)]


def _csrf_token(session: Session, keyring: Keyring, cookie: str) -> str:
    return service.keyed(service.key(session, keyring), "csrf", cookie)


def csrf_ok(request: Request, session: Session, keyring: Keyring,
             fields: dict[str, str]) -> bool:
    cookie = request.cookies.get(web.CSRF_COOKIE)
    given = fields.get(web.CSRF_FIELD, "")
    if cookie and given and hmac.compare_digest(given, _csrf_token(session, keyring, cookie)):
        return True
    audit.record(session, caller=_caller(request), action="privacy.csrf_refused",
                 outcome=audit.Outcome.DENIED, details={"path": request.url.path[:100]},
                 subject_id=service.subject_of(session, request.cookies.get(web.SESSION_COOKIE)))
    return False


def page(request: Request, session: Session, keyring: Keyring, settings: Settings,
          template: str, *, status: int = 200, **context: Any) -> Response:
    """A page with forms: a CSRF token for the browser's cookie (set if new)."""
    cookie, new = web.csrf_cookie(request)
    response = web.render(request, settings, template, status=status,
                          csrf_token=_csrf_token(session, keyring, cookie), **context)
    if new:
        web.cookie(response, settings, web.CSRF_COOKIE, cookie)
    return response


def refused(request: Request, settings: Settings) -> Response:
    return web.render(request, settings, "message.html", status=403, title="csrf_title",
                      message="csrf_refused")


# -- verification ------------------------------------------------------------------------------

@router.get("")
def start_page(request: Request, session: SessionDep, keyring: KeyringDep,
               settings: SettingsDep, who: MaybePerson) -> Response:
    if who is not None:
        return redirect(f"{web.PATH}/home")
    channels = [c for c in service.CHANNELS if delivery.configured(settings, c)]
    return page(request, session, keyring, settings, "start.html", channels=channels,
                 error=None)


@router.post("/code")
def ask_for_code(request: Request, session: SessionDep, keyring: KeyringDep,
                 settings: SettingsDep, fields: FormDep, tasks: BackgroundTasks) -> Response:
    if not csrf_ok(request, session, keyring, fields):
        return refused(request, settings)
    channel, address = fields.get("channel", ""), fields.get("address", "").strip()
    channels = [c for c in service.CHANNELS if delivery.configured(settings, c)]
    if channel not in channels or not 3 <= len(address) <= 320:
        return page(request, session, keyring, settings, "start.html", status=422,
                     channels=channels, error="address_invalid" if channel in channels
                     else "channel_not_configured")
    try:
        started = service.start(session, keyring, settings, caller=_caller(request),
                                channel=channel, address=address,
                                client_ip=request.client.host if request.client else "")
    except service.TooManyRequests:  # refused before anything but its audit entry was written
        refusal = web.render(request, settings, "message.html", status=429,
                             title="too_many_title", message="too_many")
        refusal.headers["Retry-After"] = "3600"
        return refusal
    if started.outgoing is not None:  # after the response, so after the commit
        tasks.add_task(delivery.send, settings, started.outgoing,
                       web.language(request, settings))
    response = redirect(f"{web.PATH}/code")
    web.cookie(response, settings, web.CHALLENGE_COOKIE, started.challenge_id,
               max_age=settings.privacy_code_minutes * 60)
    return response


@router.get("/code")
def code_page(request: Request, session: SessionDep, keyring: KeyringDep,
              settings: SettingsDep) -> Response:
    if not request.cookies.get(web.CHALLENGE_COOKIE):
        return redirect(web.PATH)
    return page(request, session, keyring, settings, "code.html", error=None)


@router.post("/verify")
def verify_code(request: Request, session: SessionDep, keyring: KeyringDep,
                settings: SettingsDep, fields: FormDep) -> Response:
    if not csrf_ok(request, session, keyring, fields):
        return refused(request, settings)
    challenge_id = request.cookies.get(web.CHALLENGE_COOKIE, "")
    code = "".join(fields.get("code", "").split())
    token = service.check(session, keyring, settings, caller=_caller(request),
                          challenge_id=challenge_id[:40], code=code[:12]) \
        if challenge_id else None
    if token is None:
        return page(request, session, keyring, settings, "code.html", status=400,
                     error="code_refused")
    response = redirect(f"{web.PATH}/home")
    web.forget(response, settings, web.CHALLENGE_COOKIE)
    web.cookie(response, settings, web.SESSION_COOKIE, token,
               max_age=settings.privacy_session_minutes * 60)
    return response


@router.post("/sign-out")
def sign_out(request: Request, session: SessionDep, keyring: KeyringDep,
             settings: SettingsDep, who: MaybePerson, fields: FormDep) -> Response:
    if not csrf_ok(request, session, keyring, fields):
        return refused(request, settings)
    if who is not None:
        service.end(session, caller=who.caller, token=who.token, subject_id=who.subject_id)
    response = redirect(web.PATH)
    web.forget(response, settings, web.SESSION_COOKIE)
    return response
