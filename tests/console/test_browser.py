"""Whole flows in a real browser against a live gateway: sign in (development sign-in and the
OpenID Connect code flow at a local identity provider), work the DSR queue, approve an access
request, and verify the audit log in the page, which fails when a proof is tampered with."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import FastAPI
from playwright.sync_api import Page, Route, expect

from app.audit import service as audit
from app.auth.guard import Caller
from app.config import DEV_ISSUER, Settings
from app.keys.signing import Signer
from app.main import create_app
from app.runtime import Runtime
from tests.auth.fake_idp import FakeIdP
from tests.console.browser import browser_page, shoot
from tests.gateway import Clients, audit_entries, grant_consent, write
from tests.server import LiveServer
from tests.tokens import make_token

__all__ = ["browser_page"]  # the fixture


def submit_dsr(live: LiveServer, subject_id: str, type_: str = "erasure",
               jurisdiction: str = "GDPR") -> str:
    client = live.client(make_token(sub="svc-portal", scope="dsr:submit"))
    answer = client.post("/v1/dsr", json={
        "subject_id": subject_id, "type": type_, "jurisdiction": jurisdiction,
        "verification": {"method": "logged_in_session", "reference": "session-1"}})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


def dev_sign_in(page: Page, live: LiveServer, profile: str, name: str) -> None:
    page.goto(f"{live.url}/console/login")
    page.get_by_label("Name").fill(name)
    page.get_by_label("Profile").select_option(profile)
    page.get_by_label("Profile").press("Tab")
    page.keyboard.press("Enter")  # the sign-in button, by keyboard
    expect(page.get_by_test_id("who")).to_have_text(name)


def test_officer_works_the_dsr_queue(browser_page: Page, live: LiveServer,
                                     admin: httpx.Client) -> None:
    page = browser_page
    to_extend = submit_dsr(live, "cust-ext")
    to_reject = submit_dsr(live, "cust-rej", jurisdiction="PIPL")
    dev_sign_in(page, live, "officer", "officer-li")
    expect(page).to_have_url(f"{live.url}/console/dsr")
    expect(page.get_by_test_id("overdue")).to_contain_text("0")
    rows = page.locator("#dsr-queue tbody tr")
    expect(rows).to_have_count(2)
    shoot(page, "dsr-queue")
    page.get_by_role("link", name=to_extend).click()
    page.get_by_label("Reason for the extension").fill("The request is complex (art. 12(3))")
    page.get_by_role("button", name="Extend the deadline").click()
    expect(page.get_by_test_id("extension-reason")).to_have_text(
        "The request is complex (art. 12(3))")
    expect(page.locator("#timeline")).to_contain_text("extended")
    shoot(page, "dsr-request")
    page.get_by_role("link", name="Data-subject requests").first.click()
    page.get_by_role("link", name=to_reject).click()
    page.get_by_label("Legal reason for rejecting").fill("Manifestly unfounded (PIPL art. 50)")
    page.get_by_role("button", name="Reject").click()
    expect(page.get_by_test_id("status")).to_have_text("Rejected")
    assert admin.get(f"/v1/dsr/{to_reject}").json()["rejection_reason"] == \
        "Manifestly unfounded (PIPL art. 50)"
    assert admin.get(f"/v1/dsr/{to_extend}").json()["extended"] is True
    actions = {e["action"]: e["actor"] for e in audit_entries(admin)}
    assert actions["dsr.extended"] == actions["dsr.rejected"] == "officer-li"
    page.set_viewport_size({"width": 768, "height": 1024})  # a tablet, upright
    page.goto(f"{live.url}/console/dsr")
    assert page.evaluate("document.documentElement.scrollWidth") <= 768
    expect(page.get_by_role("link", name=to_extend)).to_be_visible()
    page.get_by_role("link", name="中文").click()  # the language switch
    expect(page.get_by_role("heading", level=1)).to_have_text("个人信息权利请求")
    expect(page.locator("#dsr-queue tbody")).to_contain_text("已拒绝")
    shoot(page, "dsr-queue-zh-tablet")


def test_officer_downloads_an_erasure_certificate(browser_page: Page, live: LiveServer,
                                                  admin: httpx.Client,
                                                  drain: Callable[[], int]) -> None:
    dsr_id = submit_dsr(live, "cust-gone")
    verifier = live.client(make_token(sub="svc-verify", scope="dsr:verify"))
    assert verifier.post(f"/v1/dsr/{dsr_id}/verify", json={
        "method": "id_document", "reference": "passport checked"}).status_code == 200
    drain()
    assert admin.get(f"/v1/dsr/{dsr_id}").json()["status"] == "completed"
    page = browser_page
    dev_sign_in(page, live, "officer", "officer-li")
    page.goto(f"{live.url}/console/dsr/{dsr_id}")
    expect(page.get_by_test_id("status")).to_have_text("Completed")
    expect(page.get_by_test_id("verification")).to_contain_text("id_document, by svc-verify")
    with page.expect_download() as download:
        page.get_by_role("link", name="Download the erasure certificate").click()
    body = json.loads(Path(download.value.path()).read_text())
    assert download.value.suggested_filename == f"{dsr_id}-certificate.json"
    assert body["certificate"] == admin.get(f"/v1/dsr/{dsr_id}/certificate").json()["certificate"]
    assert body["public_key"].startswith("-----BEGIN PUBLIC KEY-----")
    reads = audit_entries(admin, "dsr.certificate_read")
    assert [e["actor"] for e in reads] == ["officer-li", "ops-admin"]


def test_approver_decides_an_access_request(browser_page: Page, live: LiveServer,
                                            admin: httpx.Client) -> None:
    analyst = live.client(make_token(sub="analyst-chen", scope="records:read",
                                     roles=["support_agent"]))
    filed = analyst.post("/v1/access-requests", json={
        "subject_id": "cust-9", "fields": ["email"], "purpose": "customer_support",
        "justification": "Customer asked us to confirm the address on file", "duration": "PT2H"})
    assert filed.status_code == 201, filed.text
    page = browser_page
    dev_sign_in(page, live, "approver", "approver-sun")
    expect(page).to_have_url(f"{live.url}/console/access")
    row = page.locator(f"#pending tr[data-id='{filed.json()['id']}']")
    expect(row).to_contain_text("Customer asked us to confirm the address on file")
    expect(row).to_contain_text("customer_support")
    shoot(page, "access-requests")
    row.get_by_role("button", name="Approve").click()
    active = page.locator(f"#active tr[data-id='{filed.json()['id']}']")
    expect(active).to_contain_text("approver-sun")
    assert analyst.get(f"/v1/access-requests/{filed.json()['id']}").json()["status"] == \
        "approved"
    [approved] = audit_entries(admin, "access.approved")
    assert approved["actor"] == "approver-sun"


def _tamper(route: Route) -> None:
    answer = route.fetch()
    document = answer.json()
    document["proof"][0] = "00" * 32
    route.fulfill(response=answer, body=json.dumps(document))


def test_auditor_verifies_the_log_in_the_page(browser_page: Page, live: LiveServer,
                                              admin: httpx.Client) -> None:
    page = browser_page
    dev_sign_in(page, live, "auditor", "auditor-zhao")
    page.get_by_label("Actor").fill("auditor-zhao")
    page.get_by_role("button", name="Search").click()
    expect(page.locator("#entries tbody")).to_contain_text("console.signed_in")
    shoot(page, "audit-search")
    page.locator("#entries tbody tr").first.get_by_role("link").click()
    verdict = page.locator("#verdict")
    expect(verdict).to_have_attribute("data-state", "verified")
    expect(verdict).to_have_text("Verified")
    expect(page.locator("#checks li[data-ok='true']")).to_have_count(4)
    shoot(page, "audit-verified")
    page.route("**/proof.json", _tamper)
    page.get_by_role("button", name="Verify").click()
    expect(verdict).to_have_attribute("data-state", "failed")
    expect(page.locator("#checks li[data-ok='false']")).to_contain_text("inclusion proof")
    page.unroute("**/proof.json")
    other_key = Signer(Ed25519PrivateKey.generate()).public_pem()  # not the log's key
    page.get_by_label("Log public key you keep").fill(other_key)
    page.get_by_role("button", name="Verify").click()
    expect(verdict).to_have_attribute("data-state", "failed")
    expect(page.locator("#checks li[data-ok='false']")).to_contain_text("checkpoint signature")


@pytest.fixture
def idp() -> Iterator[FakeIdP]:
    provider = FakeIdP()
    yield provider
    provider.stop()


def test_sign_in_at_the_identity_provider(browser_page: Page, idp: FakeIdP,
                                          make_settings: Callable[..., Settings],
                                          start_server: Callable[[FastAPI], LiveServer]) -> None:
    live = start_server(create_app(make_settings(
        jwt_issuer=DEV_ISSUER, oidc_issuer=idp.issuer, oidc_client_id="pgw-console")))
    idp.user = {"sub": "officer-oidc", "roles": ["compliance_officer"],
                "scope": "openid dsr:manage audit:read"}
    page = browser_page
    page.goto(f"{live.url}/console/login")
    shoot(page, "sign-in")
    page.get_by_role("link", name="Sign in with your organisation's account").click()
    expect(page.get_by_test_id("who")).to_have_text("officer-oidc")
    expect(page).to_have_url(f"{live.url}/console/dsr")
    [exchange] = idp.token_requests
    assert exchange["grant_type"] == "authorization_code"
    assert len(exchange["code_verifier"]) > 43
    audit = live.client(make_token(sub="x", scope="audit:read"))  # HS tokens are not accepted
    assert audit.get("/v1/audit").status_code == 401
    reader = live.client(idp.token({"sub": "reader", "aud": "privacy-gateway",
                                     "scope": "audit:read", "roles": []}))
    signed_in = [e for e in reader.get("/v1/audit").json()["items"]
                 if e["action"] == "console.signed_in"]
    assert [(e["actor"], e["roles"], e["details"]["method"]) for e in signed_in] == [
        ("officer-oidc", ["compliance_officer"], "oidc")]


def test_a_provider_user_without_console_scopes_is_refused(
        browser_page: Page, idp: FakeIdP, make_settings: Callable[..., Settings],
        start_server: Callable[[FastAPI], LiveServer]) -> None:
    live = start_server(create_app(make_settings(
        jwt_issuer=DEV_ISSUER, oidc_issuer=idp.issuer, oidc_client_id="pgw-console")))
    idp.user = {"sub": "intern", "roles": ["support_agent"], "scope": "openid records:read"}
    page = browser_page
    page.goto(f"{live.url}/console/login/oidc")
    expect(page.locator(".problem")).to_contain_text("needs the scope")
    idp.user = {"sub": "intruder", "roles": ["root"], "scope": "openid dsr:manage"}
    page.goto(f"{live.url}/console/login/oidc")
    expect(page.locator(".problem")).to_contain_text("root")
    idp.user = None  # the provider refuses to sign anyone in
    page.goto(f"{live.url}/console/login/oidc")
    expect(page.locator(".problem")).to_contain_text("access_denied")
    page.goto(f"{live.url}/console/dsr")  # still the intern's session, refused here
    expect(page.locator(".problem")).to_contain_text("needs the scope dsr:manage")




def test_officer_holds_a_subject_and_reads_their_page(browser_page: Page, live: LiveServer,
                                                      admin: httpx.Client,
                                                      clients: Clients) -> None:
    write(clients(sub="svc-crm"), subject_id="cust-1")
    when = (datetime.now(UTC) - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    for subject_id in ("cust-1", "cust-2"):
        grant_consent(admin, subject_id, "marketing_email", captured_at=when)
    assert admin.post("/v1/subjects/cust-2/consents/marketing_email/withdraw").status_code == 200
    page = browser_page
    dev_sign_in(page, live, "officer", "officer-li")
    page.get_by_role("link", name="Legal holds").click()
    page.get_by_label("Subject").fill("cust-1")
    page.get_by_label("Reason").fill("Litigation 2026-17: keep everything")
    page.get_by_role("button", name="Place a hold").click()
    held = page.locator("#holds tbody tr").first
    expect(held).to_contain_text("Litigation 2026-17: keep everything")
    shoot(page, "legal-holds")
    page.get_by_role("link", name="Subject", exact=True).click()
    page.get_by_label("Subject").fill("cust-1")
    page.get_by_label("Purpose").select_option("customer_support")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("#records dd[data-field='name']")).to_contain_text("张伟")
    expect(page.locator("#consents")).to_contain_text("marketing_email")
    shoot(page, "subject")
    page.get_by_role("link", name="Consent", exact=True).click()
    expect(page.locator("#chart-marketing_email rect.given")).to_have_count(1)
    expect(page.locator("#chart-marketing_email rect.withdrawn")).to_have_count(1)
    shoot(page, "consent-chart")
    page.get_by_role("link", name="Legal holds").click()
    page.locator("#holds tbody tr").first.get_by_role("button", name="Release").click()
    expect(page.locator("#holds tbody")).to_contain_text("Nothing here.")
    actions = [e["action"] for e in audit_entries(admin) if e["actor"] == "officer-li"]
    assert "legal_hold.placed" in actions
    assert "legal_hold.released" in actions


@pytest.mark.parametrize("details", [
    # the page hashes the bytes Python wrote: 1.0 stays 1.0 and 2^64 + 1 is not rounded
    {"ratio": 1.0, "tiny": 1e-07, "big": 2**64 + 1, "中文": "值"},
    # keys sorted by code point, as Python does (an emoji after a full-width sign, not before
    # it), and a key named __proto__ hashed like any other
    {"\uff01": 1, "\U0001f600": 2, "__proto__": {"x": 1}, "a": 3},
], ids=["numbers", "keys"])
def test_an_entry_javascript_would_spell_differently_verifies(
        browser_page: Page, live: LiveServer, runtime: Runtime, details: dict[str, object]) -> None:
    with runtime.transaction() as session:
        audit.record(session, caller=Caller(sub="bench"), action="test.spelling",
                     details=details)
    page = browser_page
    dev_sign_in(page, live, "auditor", "auditor-zhao")
    page.get_by_label("Action").fill("test.spelling")
    page.get_by_role("button", name="Search").click()
    page.locator("#entries tbody tr").first.get_by_role("link").click()
    expect(page.locator("#verdict")).to_have_attribute("data-state", "verified")
