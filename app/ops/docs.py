"""The interactive API docs, served from the Swagger UI files packaged with fastapi-offline, so
they work offline and load nothing from a CDN. The page keeps a content security policy: its
one inline script is allowed by its hash, everything else must come from this origin."""

from __future__ import annotations

import base64
import hashlib
import re
from importlib.resources import files
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/assets"
_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


def _assets_dir() -> Path:
    return Path(str(files("fastapi_offline") / "static"))


def _policy(html: str) -> str:
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in _INLINE_SCRIPT.findall(html))
    # Swagger UI draws its icons from data: URIs in its stylesheet and sets element styles
    # from script (allowed by style-src 'self': CSSOM changes are not inline styles).
    return ("default-src 'none'; "
            f"script-src 'self' {hashes}; style-src 'self'; img-src 'self' data:; "
            "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


def install_docs(app: FastAPI, *, title: str) -> None:
    """Serve Swagger UI at /docs from the packaged assets; the app must be created with
    docs_url=None and redoc_url=None so FastAPI's CDN pages are not served."""
    app.mount(ASSETS_PATH, StaticFiles(directory=_assets_dir()), name="docs-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        page = get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}", title=f"{title} - API docs",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
            oauth2_redirect_url=None)
        html = bytes(page.body).decode()
        return HTMLResponse(html, headers={"content-security-policy": _policy(html)})

    # a plain route, as FastAPI's own docs are: no scope, not an operation of the API
    app.add_route(DOCS_PATH, swagger_ui, include_in_schema=False)
