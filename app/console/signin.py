"""Signing in to the console: OpenID Connect authorization code with PKCE at the provider the
API trusts (PGW_OIDC_ISSUER), with the API's claim mapping; a development sign-in in dev only."""

from __future__ import annotations

import re
import secrets
from typing import Annotated
from urllib.parse import urlencode

import anyio.to_thread
import httpx
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.auth import oidc
from app.auth.guard import Caller, audit_denial, known_roles
from app.auth.tokens import RESERVED_SUBJECTS, TokenVerifier
from app.config import Settings
from app.console import sessions
from app.console.guard import (
    COOKIE,
    LOGIN_COOKIE,
    TEMPLATES,
    ConsoleRoute,
    Form,
    SignedIn,
)
from app.deps import RuntimeDep, SessionDep, SettingsDep
from app.errors import Forbidden, ServiceUnavailable, Unauthorized
from app.web import i18n, pages

router = APIRouter(prefix="/console", route_class=ConsoleRoute, include_in_schema=False)

# Development sign-in: who one may pretend to be. Each profile is a set of the API's scopes
# and policy roles, so trying the console in dev exercises the rules production applies.
DEV_NAME = re.compile(r"[\w.@-]{1,64}")
DEV_PROFILES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "officer": (("compliance_officer",), ("dsr:manage", "dsr:verify", "access:approve",
                                          "audit:read", "consent:read", "policy:read",
                                          "records:read")),
    "auditor": ((), ("audit:read",)),
    "approver": (("compliance_officer",), ("access:approve",)),  # decides, reads nothing
    "support": (("support_agent",), ("records:read",)),
    "key_admin": ((), ("keys:admin", "policy:read")),
}


class SignInFailed(Forbidden):
    type, title = "sign-in-failed", "Sign-in failed"


def _cookie(response: Response, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(name, value, max_age=max_age, path="/console", httponly=True,
                        secure=not settings.is_dev, samesite="lax")


@router.get("/login", response_class=HTMLResponse)
def login_page(request: Request, settings: SettingsDep) -> Response:
    nonce = secrets.token_urlsafe(24)  # double-submit token of the development form
    response = pages.render(TEMPLATES, request, "login.html", staff=None, dev=settings.is_dev,
                            oidc=bool(settings.oidc_issuer and settings.oidc_client_id),
                            profiles=list(DEV_PROFILES), login_token=nonce)
    _cookie(response, settings, LOGIN_COOKIE, nonce, 600)
    return response


def _signed_in(session: Session, settings: Settings, caller: Caller, method: str) -> Response:
    token = sessions.start(session, settings, caller=caller)
    audit.record(session, caller=caller, action="console.signed_in",
                 details={"method": method, "scopes": sorted(caller.scopes)})
    response = RedirectResponse("/console", status_code=303)
    _cookie(response, settings, COOKIE, token, int(settings.console_session_hours * 3600))
    response.delete_cookie(LOGIN_COOKIE, path="/console")
    return response


@router.post("/login/dev")
async def dev_login(request: Request, settings: SettingsDep) -> Response:
    if not settings.is_dev:
        await audit_denial(request, Caller(sub="anonymous"), action="console.sign_in_refused",
                           details={"method": "dev"})
        raise Forbidden("the development sign-in exists only with PGW_ENV=dev")
    form = await pages.read_form(request, max_fields=10)
    sub, profile, token = (str(form.get(k, "")).strip()
                           for k in ("sub", "profile", "login_token"))
    if not pages.same_token(token, request.cookies.get(LOGIN_COOKIE, "")) or len(token) < 16:
        raise SignInFailed("the sign-in form is stale; load the sign-in page again")
    if profile not in DEV_PROFILES or not DEV_NAME.fullmatch(sub) or \
            sub.startswith(RESERVED_SUBJECTS):
        raise SignInFailed("choose a profile and give a name (letters, digits, . _ @ -)")
    roles, scopes = DEV_PROFILES[profile]
    caller = Caller(sub=sub, roles=roles, scopes=frozenset(scopes),
                    request_id=getattr(request.state, "request_id", None))
    runtime = request.app.state.runtime

    def sign_in() -> Response:
        with runtime.transaction() as session:
            return _signed_in(session, settings, caller, "dev")

    return await anyio.to_thread.run_sync(sign_in)


def _endpoints(settings: Settings) -> tuple[str, str]:
    """The provider's authorization and token endpoints, from its discovery document."""
    assert settings.oidc_issuer is not None  # noqa: S101 - checked by the caller
    url = settings.oidc_issuer.rstrip("/") + oidc.DISCOVERY_PATH
    try:
        document, _ = oidc.get_json(url, setting="PGW_OIDC_ISSUER", dev=settings.is_dev,
                                    timeout=settings.jwks_fetch_timeout_seconds)
    except oidc.FetchError as exc:
        raise ServiceUnavailable(str(exc)) from None
    found = document.get("authorization_endpoint"), document.get("token_endpoint")
    for name, value in zip(("authorization_endpoint", "token_endpoint"), found, strict=True):
        if not isinstance(value, str) or oidc.url_problem(value, dev=settings.is_dev):
            raise ServiceUnavailable(f"PGW_OIDC_ISSUER: the discovery document has no usable "
                                     f"{name}")
    return str(found[0]), str(found[1])


def _configured(settings: Settings) -> str:
    if not settings.oidc_issuer or not settings.oidc_client_id:
        raise Forbidden("sign-in at the identity provider needs PGW_OIDC_ISSUER and "
                        "PGW_OIDC_CLIENT_ID")
    return settings.oidc_client_id


@router.get("/login/oidc")
def oidc_login(request: Request, settings: SettingsDep, runtime: RuntimeDep) -> Response:
    client_id = _configured(settings)
    authorize, _ = _endpoints(settings)  # before any database session: no wait holds one
    with runtime.transaction() as session:
        state, challenge, nonce = sessions.begin_login(session)
    query = urlencode({"response_type": "code", "client_id": client_id, "scope": "openid",
                       "redirect_uri": str(request.url_for("console_callback")),
                       "state": state, "code_challenge": challenge,
                       "code_challenge_method": "S256", "nonce": nonce})
    response = RedirectResponse(f"{authorize}?{query}", status_code=303)
    _cookie(response, settings, LOGIN_COOKIE, state, 600)
    return response


def _exchange(settings: Settings, token_url: str, *, code: str, verifier: str,
              redirect_uri: str) -> tuple[str, str]:
    """The access and ID tokens for `code`; no database session is open while this waits."""
    form = {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri,
            "client_id": settings.oidc_client_id or "", "code_verifier": verifier}
    auth: httpx.Auth | None = None
    if settings.oidc_client_secret is not None:
        auth = httpx.BasicAuth(settings.oidc_client_id or "",
                               settings.oidc_client_secret.get_secret_value())
    try:
        with httpx.Client(timeout=settings.jwks_fetch_timeout_seconds, auth=auth,
                          follow_redirects=False) as client:
            answer = client.post(token_url, data=form, headers={"Accept": "application/json"})
        document = answer.json() if answer.status_code == 200 else {}
    except (httpx.HTTPError, ValueError):
        raise ServiceUnavailable("the identity provider's token endpoint cannot be "
                                 "reached") from None
    token = document.get("access_token") if isinstance(document, dict) else None
    if not isinstance(token, str):
        raise SignInFailed(f"the identity provider refused the code (HTTP "
                           f"{answer.status_code})")
    identity = document.get("id_token")
    return token, identity if isinstance(identity, str) else ""


@router.get("/callback", name="console_callback")
async def callback(request: Request, settings: SettingsDep, runtime: RuntimeDep,
                   state: Annotated[str, Query(min_length=1, max_length=100)],
                   code: Annotated[str | None, Query(min_length=1, max_length=2000)] = None,
                   error: Annotated[str | None, Query(max_length=100)] = None) -> Response:
    _configured(settings)
    if code is None:  # the provider refused (RFC 6749 4.1.2.1): say which error it gave
        raise SignInFailed(f"the identity provider did not sign you in "
                           f"({error or 'no code'})")
    if not pages.same_token(state, request.cookies.get(LOGIN_COOKIE, "")):
        raise SignInFailed("this sign-in was not started in this browser; start again")

    def take() -> str | None:
        with runtime.transaction() as session:
            return sessions.finish_login(session, state=state)

    verifier = await anyio.to_thread.run_sync(take)
    if verifier is None:
        raise SignInFailed("this sign-in is unknown or took too long; start again")
    _, token_url = await anyio.to_thread.run_sync(_endpoints, settings)
    access_token, id_token = await anyio.to_thread.run_sync(lambda: _exchange(
        settings, token_url, code=code, verifier=verifier,
        redirect_uri=str(request.url_for("console_callback"))))
    checker: TokenVerifier = request.app.state.token_verifier
    await checker.prepare(id_token)
    try:
        checker.verify_id_token(id_token, issuer=settings.oidc_issuer or "",
                                client_id=settings.oidc_client_id or "",
                                nonce=sessions.login_nonce(verifier))
    except Unauthorized as exc:
        await audit_denial(request, Caller(sub="anonymous"), action="console.sign_in_refused",
                           details={"method": "oidc", "reason": exc.detail})
        raise SignInFailed(f"the identity provider's answer does not check out: {exc.detail}"
                           ) from None
    await checker.prepare(access_token)
    claims = checker.verify(access_token)  # the API's issuer, audience, keys and claim mapping
    caller = await known_roles(request, Caller(
        sub=claims.sub, roles=claims.roles, scopes=claims.scopes,
        request_id=getattr(request.state, "request_id", None)), checker)

    def sign_in() -> Response:
        with runtime.transaction() as session:
            return _signed_in(session, settings, caller, "oidc")

    return await anyio.to_thread.run_sync(sign_in)


@router.post("/logout")
def logout(request: Request, staff: SignedIn, form: Form, session: SessionDep) -> Response:
    sessions.end(session, token=request.cookies.get(COOKIE, ""))
    audit.record(session, caller=staff.caller, action="console.signed_out")
    response = RedirectResponse("/console/login", status_code=303)
    response.delete_cookie(COOKIE, path="/console")
    return response


@router.get("/lang")
def switch_language(to: Annotated[str, Query(max_length=8)],
                    back: Annotated[str, Query(alias="next", max_length=500)] = "/console",
                    ) -> Response:
    response = RedirectResponse(pages.local_target(back, "/console"), status_code=303)
    if to in i18n.LANGUAGES:
        response.set_cookie(i18n.COOKIE, to, max_age=365 * 86400, path="/", samesite="lax")
    return response

