"""A real headless Chromium from the system packages, driven by Playwright, that can reach
nothing but loopback. Tests skip, saying why, without Chromium, except under CI."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Page, Route, sync_playwright

CHROMIUM = next((p for p in ("/usr/bin/chromium", shutil.which("chromium"),
                             shutil.which("chromium-browser")) if p and Path(p).exists()), None)
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
LOOPBACK = {"127.0.0.1", "localhost", "[::1]", "::1"}
SHOTS = os.environ.get("PGW_SCREENSHOTS")  # a directory: save the main pages there


def _refuse_the_internet(route: Route) -> None:
    if urlsplit(route.request.url).hostname in LOOPBACK:
        route.continue_()
    else:
        route.abort("blockedbyclient")


@pytest.fixture
def browser_page() -> Iterator[Page]:
    """A page in a fresh Chromium context (laptop width), only loopback reachable."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("Chromium is missing under CI (.ci/run installs it)")
        pytest.skip("no Chromium at /usr/bin/chromium (apt-get install chromium)")

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        context = browser.new_context(viewport={"width": 1280, "height": 800},
                                      accept_downloads=True, locale="en-GB")
        context.route("**/*", _refuse_the_internet)
        page = context.new_page()
        page.set_default_timeout(15_000)
        try:
            yield page
        finally:
            context.close()
            browser.close()


def shoot(page: Page, name: str) -> None:
    """Save a screenshot of the page for the README when PGW_SCREENSHOTS names a directory."""
    if SHOTS:
        Path(SHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SHOTS) / f"{name}.png"), full_page=True)
