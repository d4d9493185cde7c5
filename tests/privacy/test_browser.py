"""The privacy centre in a real headless Chromium from the system, driven by Playwright: a
person verifies by a code read from the SMTP receiver, withdraws a consent, files an erasure
and sees it completed. Screenshots of the main pages go to docs/screenshots/."""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.privacy.conftest import ALICE
from tests.privacy.mailbox import Mailbox
from tests.server import LiveServer

CHROMIUM = Path(os.environ.get("PGW_TEST_CHROMIUM") or shutil.which("chromium") or
                "/usr/bin/chromium")
# the README's screenshots are rewritten with PGW_UPDATE_SCREENSHOTS=1; else they go to a
# temporary directory, so that a test run leaves the repository as it was
DOCS_SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]

playwright_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture(scope="module")
def chromium() -> Iterator[object]:
    if not CHROMIUM.exists():
        pytest.skip(f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium)")
    with playwright_api.sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        yield browser
        browser.close()


def test_a_person_verifies_withdraws_a_consent_and_sees_their_erasure_completed(
        chromium: object, live: LiveServer, people: dict[str, dict[str, str]],
        mailbox: Mailbox, admin: httpx.Client, drain: Callable[[], int],
        tmp_path: Path) -> None:
    shots = DOCS_SHOTS if os.environ.get("PGW_UPDATE_SCREENSHOTS") == "1" else tmp_path
    context = chromium.new_context(  # type: ignore[attr-defined]
        locale="en-GB", viewport={"width": 1100, "height": 900})
    page = context.new_page()
    blocked: list[str] = []
    page.on("console", lambda m: blocked.append(m.text) if "Content Security" in m.text
            else None)
    shots.mkdir(parents=True, exist_ok=True)

    page.goto(f"{live.url}/privacy")
    expect = playwright_api.expect
    expect(page.get_by_role("heading", level=1)).to_have_text("Your privacy, your data")
    page.get_by_label("E-mail address or phone number").fill(ALICE["email"])
    page.screenshot(path=str(shots / "privacy-start.png"), full_page=True)
    page.get_by_role("button", name="Send me a code").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Enter your code")
    code = mailbox.wait_for_code(ALICE["email"])
    page.get_by_label("One-time code").fill(code)
    page.screenshot(path=str(shots / "privacy-code.png"), full_page=True)
    page.get_by_role("button", name="Continue").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your privacy centre")

    marketing = page.locator('tr.consent[data-purpose="marketing_email"]')
    expect(marketing.locator(".state")).to_contain_text("consented")
    expect(marketing).to_contain_text("marketing v1")
    page.screenshot(path=str(shots / "privacy-home.png"), full_page=True)
    marketing.get_by_role("button", name="Withdraw").click()
    expect(page.locator('tr.consent[data-purpose="marketing_email"] .state')) \
        .to_contain_text("withdrawn")

    corrections = page.locator("#corrections")
    page.get_by_label("Request", exact=True).select_option("rectification")
    expect(corrections).to_be_visible()  # the page's own script, allowed by the CSP
    page.get_by_label("Request", exact=True).select_option("erasure")
    expect(corrections).to_be_hidden()
    page.get_by_label("Law", exact=True).select_option("GDPR")
    page.get_by_role("button", name="Submit request").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Erasure")
    expect(page.locator("dd.status")).to_have_text("received")
    dsr_id = re.sub(r".*/requests/", "", page.url)
    assert drain() >= 1
    page.reload()
    expect(page.locator("dd.status")).to_have_text("completed")
    page.screenshot(path=str(shots / "privacy-request.png"), full_page=True)
    assert sorted(p.name for p in shots.glob("privacy-*.png")) == [
        "privacy-code.png", "privacy-home.png", "privacy-request.png", "privacy-start.png"]
    assert admin.get(f"/v1/dsr/{dsr_id}").json()["status"] == "completed"
    assert admin.get("/v1/subjects/cust-1/consents").json()["purposes"][
        "marketing_email"]["state"] == "withdrawn"
    assert blocked == []
    context.close()


def test_the_centre_in_chinese_with_the_switch(chromium: object, live: LiveServer,
                                               tmp_path: Path) -> None:
    shots = DOCS_SHOTS if os.environ.get("PGW_UPDATE_SCREENSHOTS") == "1" else tmp_path
    context = chromium.new_context(  # type: ignore[attr-defined]
        locale="zh-CN", viewport={"width": 800, "height": 640})  # a tablet's width
    page = context.new_page()
    page.goto(f"{live.url}/privacy")
    expect = playwright_api.expect
    expect(page.get_by_role("heading", level=1)).to_have_text("您的个人信息，由您做主")
    shots.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shots / "privacy-start-zh.png"), full_page=True)
    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Your privacy, your data")
    context.close()
