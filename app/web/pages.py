"""Plumbing for server-rendered sites: a Jinja2 environment with autoescaping, the security
headers every page carries, and language negotiation. Pages load scripts and styles only from
our own static files: the policy allows no inline script, no inline style and no other origin."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined

from app.errors import Invalid
from app.web import i18n


def csp(*, image_origin: str | None = None, data_images: bool = False,
        connect: bool = False) -> str:
    """The Content-Security-Policy of a site's pages: our own scripts, styles and images only,
    plus `data:` images, one other image origin (the centre's logo) and fetches to ourselves
    where a site needs them."""
    images = " ".join(["'self'", *(["data:"] if data_images else []),
                       *([image_origin] if image_origin else [])])
    return "; ".join([
        "default-src 'none'", "script-src 'self'", "style-src 'self'", f"img-src {images}",
        *(["connect-src 'self'"] if connect else []),
        "form-action 'self'", "base-uri 'none'", "frame-ancestors 'none'"])


PAGE_CSP = csp(data_images=True, connect=True)  # the console's: verify.js fetches proofs
PAGE_HEADERS = {"content-security-policy": PAGE_CSP, "cache-control": "no-store",
                "x-frame-options": "DENY"}


def environment(templates: Path, **filters: Callable[..., Any]) -> Environment:
    """The templates of a site: autoescaped, and a name a page does not give is an error."""
    env = Environment(loader=FileSystemLoader(templates), autoescape=True,
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(filters)
    return env


def render(env: Environment, request: Request, name: str, *, status: int = 200,
           **context: Any) -> HTMLResponse:
    language = i18n.language(request)
    html = env.get_template(name).render(
        request=request, lang=language, t=i18n.translator(language),
        languages=i18n.LANGUAGES, **context)
    return HTMLResponse(html, status_code=status, headers=PAGE_HEADERS)


def local_target(target: str | None, site: str) -> str:
    """A page of this site to go back to (under `site`, no `..`, no other host); else the
    site's start page."""
    if not target or not target.startswith(site) or any(bad in target for bad in (
            "//", "\\", "..", "%2e", "%2E", "%2f", "%2F", "%5c", "%5C")):
        return site
    if target[len(site):][:1] not in ("", "/", "?"):
        return site  # /privacy-other is not /privacy
    return target


def same_token(given: object, expected: str) -> bool:
    """Compare a form's CSRF token with the session's in constant time."""
    return isinstance(given, str) and secrets.compare_digest(given.encode(), expected.encode())


class FormRefused(Invalid):
    type, title = "form-refused", "Form refused"


async def read_form(request: Request, *, max_fields: int = 50) -> dict[str, str]:
    """A posted HTML form (application/x-www-form-urlencoded; its size is bounded by the body
    limit). Parsed here with the standard library rather than a multipart parser: pages post
    no files."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise FormRefused("a form is posted as application/x-www-form-urlencoded")
    try:
        pairs = parse_qsl((await request.body()).decode("utf-8"), keep_blank_values=True,
                          max_num_fields=max_fields, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        raise FormRefused("the form cannot be read") from None
    return dict(pairs)
