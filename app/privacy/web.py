"""Pages of the privacy centre: templates, message catalogues, the language, branding, the
Content Security Policy, cookies and CSRF tokens.

Pages run only scripts and styles from our own static files (`script-src 'self'`, no inline
code), so the operator's colours come in a stylesheet the centre makes (`/privacy/brand.css`).
A form's CSRF token is a keyed hash of a random cookie (`SameSite=Strict`, `HttpOnly`): another
site can neither read the cookie nor make the token, and a cookie planted by a sibling domain
has no token to match it.
"""

from __future__ import annotations

import json
import secrets
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from app.config import Settings
from app.errors import GatewayError
from app.web import pages
from app.web.i18n import negotiate
from app.web.pages import local_target

HERE = Path(__file__).parent
SESSION_COOKIE = "pgw_privacy_session"
CHALLENGE_COOKIE = "pgw_privacy_challenge"
CSRF_COOKIE = "pgw_privacy_csrf"
LANGUAGE_COOKIE = "pgw_privacy_lang"
CSRF_FIELD = "csrf_token"
PATH = "/privacy"


TEMPLATES = pages.environment(HERE / "templates")


@cache
def catalogue(language: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((HERE / "messages" / f"{language}.json").read_text(
        encoding="utf-8"))
    return loaded


def language(request: Request, settings: Settings) -> str:
    """The switch's choice (a cookie), else the browser's Accept-Language, else the first
    language the operator offers."""
    offered = settings.privacy_languages
    chosen = request.cookies.get(LANGUAGE_COOKIE)
    if chosen in offered:
        return str(chosen)
    return negotiate(request.headers.get("accept-language", ""), offered) or offered[0]


def csp(settings: Settings) -> str:
    logo = settings.privacy_logo_url
    origin = f"https://{urlsplit(logo).netloc}" if logo and logo.startswith("https://") else None
    return pages.csp(image_origin=origin)


def cookie(response: Response, settings: Settings, name: str, value: str, *,
           max_age: int | None = None, strict: bool = True) -> None:
    response.set_cookie(name, value, max_age=max_age, path=PATH, httponly=True,
                        secure=not settings.is_dev, samesite="strict" if strict else "lax")


def forget(response: Response, settings: Settings, name: str) -> None:
    response.delete_cookie(name, path=PATH, httponly=True, secure=not settings.is_dev,
                           samesite="strict")


def csrf_cookie(request: Request) -> tuple[str, bool]:
    """The browser's CSRF cookie, or a new one (and whether it is new)."""
    found = request.cookies.get(CSRF_COOKIE)
    if found and 20 <= len(found) <= 100:
        return found, False
    return secrets.token_urlsafe(24), True


def render(request: Request, settings: Settings, template: str, *, status: int = 200,
           csrf_token: str | None = None, **context: Any) -> HTMLResponse:
    lang = language(request, settings)
    messages = catalogue(lang)

    def t(name: str, **values: Any) -> str:
        return messages.get(name, name).format(**values) if values else \
            messages.get(name, name)

    page = TEMPLATES.get_template(template).render(
        t=t, lang=lang, settings=settings, csrf_field=CSRF_FIELD, csrf_token=csrf_token or "",
        languages=settings.privacy_languages, path=request.url.path,
        logo=logo_src(settings), **context)
    return HTMLResponse(page, status_code=status, headers=page_headers(settings, lang))


def error_page(request: Request, exc: GatewayError) -> Response:
    """The centre's page for an error a browser meets (no route, a malformed query...): its
    status's title and a plain message in the person's language."""
    settings: Settings = request.app.state.settings
    title = f"status_{exc.status}"
    return render(request, settings, "message.html", status=exc.status,
                  title=title if title in catalogue("en") else "request_refused_title",
                  message="error_message")


def page_headers(settings: Settings, lang: str) -> dict[str, str]:
    return {"Content-Security-Policy": csp(settings), "Cache-Control": "no-store",
            "Content-Language": lang, "Vary": "Accept-Language, Cookie"}


def logo_src(settings: Settings) -> str:
    if settings.privacy_logo_file is not None:
        return f"{PATH}/brand/logo"
    return settings.privacy_logo_url or f"{PATH}/static/logo.svg"


def brand_css(settings: Settings) -> str:
    return (f":root {{ --brand: {settings.privacy_primary_colour}; "
            f"--brand-soft: {settings.privacy_accent_colour}; }}\n")


def safe_next(target: str | None) -> str:
    """A page of the centre to go back to; anything else goes to its start page."""
    return local_target(target, PATH)
