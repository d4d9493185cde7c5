"""The API docs at /docs come from packaged assets: same-origin only, under a content security
policy, and they render in a browser that cannot reach the internet."""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest

from tests.server import LiveServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


class _Page(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_inline_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        self.urls.extend(v for k, v in found.items() if k in {"src", "href"} and v)
        self._in_inline_script = tag == "script" and "src" not in found

    def handle_endtag(self, tag: str) -> None:
        self._in_inline_script = False

    def handle_data(self, data: str) -> None:
        if self._in_inline_script:
            self.inline_scripts.append(data)


def parse(html: str) -> _Page:
    page = _Page()
    page.feed(html)
    return page


def test_docs_reference_only_same_origin_assets_under_a_strict_policy(live: LiveServer) -> None:
    response = live.client().get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    page = parse(response.text)
    assert sorted(page.urls) == ["/docs/assets/favicon.png", "/docs/assets/swagger-ui-bundle.js",
                                 "/docs/assets/swagger-ui.css"]
    assert "cdn" not in response.text
    assert "://" not in response.text
    policy = dict(part.strip().split(" ", 1) for part in
                  response.headers["content-security-policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"
    assert "unsafe" not in response.headers["content-security-policy"]
    [script] = page.inline_scripts
    digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    assert policy["script-src"] == f"'self' 'sha256-{digest}'"
    # the page's policy is its own: the API keeps the one that allows no script at all
    api = live.client().get("/openapi.json")
    assert api.headers["content-security-policy"] == "default-src 'none'; frame-ancestors 'none'"


def test_docs_assets_are_served_with_their_types(live: LiveServer) -> None:
    client = live.client()
    for url in parse(client.get("/docs").text).urls:
        response = client.get(url)
        assert response.status_code == 200, url
        assert response.headers["content-type"].startswith(_TYPES[Path(url).suffix]), url
        assert len(response.content) > 500, url
    assert b"SwaggerUIBundle" in client.get("/docs/assets/swagger-ui-bundle.js").content
    assert client.get("/docs/assets/nope.js").status_code == 404
    assert client.get("/redoc").status_code == 404  # FastAPI's CDN page is not served


def test_docs_render_offline_in_a_browser(live: LiveServer, tmp_path: Path) -> None:
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (Debian: apt-get install chromium)")
    # Every request but those to the gateway goes to a proxy on the discard port: refused.
    result = subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
         "--disable-background-networking", "--no-first-run",
         "--proxy-server=127.0.0.1:9", "--proxy-bypass-list=127.0.0.1",
         f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=15000",
         "--dump-dom", f"{live.url}/docs"],
        capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    dom = result.stdout
    rendered = set(re.findall(r'class="opblock opblock-(\w+)', dom))
    assert {"get", "post"} <= rendered, dom[-2000:]
    assert 'data-path="/v1/records"' in dom
    assert "Privacy gateway" in dom
