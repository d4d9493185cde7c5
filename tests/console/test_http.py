"""The console over plain HTTP: cookie flags, the content security policy, CSRF refusals, scope
refusals (audited, with the person as the actor), sign-out, and no development sign-in in prod."""

from __future__ import annotations

from collections.abc import Callable
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.keys.signing import generate_pem
from app.main import create_app
from app.web.pages import PAGE_CSP
from tests.console.staff import csrf_of, sign_in
from tests.gateway import audit_entries
from tests.server import LiveServer
from tests.tokens import TEST_ISSUER, TEST_SECRET, make_token

PROD_SECRET = "q7Vd0-LkT3pX9wYbR2mZ8sNcH4fJ6gA1eU5iO"


def submit_dsr(live: LiveServer, subject_id: str = "cust-7") -> str:
    client = live.client(make_token(sub="svc-portal", scope="dsr:submit"))
    answer = client.post("/v1/dsr", json={
        "subject_id": subject_id, "type": "erasure", "jurisdiction": "GDPR",
        "verification": {"method": "logged_in_session", "reference": "session-1"}})
    assert answer.status_code == 202, answer.text
    return str(answer.json()["id"])


class _Scripts(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.sources: list[str] = []
        self.inline = 0
        self.styles = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "script":
            if found.get("src"):
                self.sources.append(str(found["src"]))
            else:
                self.inline += 1
        self.styles += tag == "style" or "style" in found


def test_session_cookie_flags_and_page_policy(live: LiveServer) -> None:
    client = live.client()
    page = client.get("/console/login")
    token = page.text.split('name="login_token" value="')[1].split('"')[0]
    answer = client.post("/console/login/dev", data={"sub": "officer-li", "profile": "officer",
                                                      "login_token": token})
    assert answer.status_code == 303
    cookie = next(c for c in answer.headers.get_list("set-cookie")
                  if c.startswith("pgw_console="))
    flags = {part.strip().split("=")[0].lower() for part in cookie.split(";")}
    assert {"httponly", "path", "samesite"} <= flags
    assert "samesite=lax" in cookie.lower()
    assert "path=/console" in cookie.lower()
    assert "secure" not in flags  # dev over http; prod is checked below
    queue = client.get("/console/dsr")
    assert queue.status_code == 200
    assert queue.headers["content-security-policy"] == PAGE_CSP
    assert "unsafe" not in PAGE_CSP
    assert "script-src 'self';" in PAGE_CSP
    assert queue.headers["x-frame-options"] == "DENY"
    scripts = _Scripts()
    scripts.feed(client.get("/console/audit/1").text)
    assert scripts.inline == 0
    assert scripts.styles == 0
    assert scripts.sources == ["/console/static/verify.js"]
    assert client.get("/console/static/verify.js").status_code == 200


def test_a_form_without_its_csrf_token_is_refused_and_audited(live: LiveServer,
                                                              admin: httpx.Client) -> None:
    dsr_id = submit_dsr(live)
    before = admin.get(f"/v1/dsr/{dsr_id}").json()["status"]
    assert before in ("unverified", "received")
    officer = sign_in(live)
    for data in ({"reason": "no token"}, {"reason": "stale", "csrf": "x" * 43}):
        refused = officer.post(f"/console/dsr/{dsr_id}/reject", data=data)
        assert refused.status_code == 403
        assert "security token" in refused.text
    assert admin.get(f"/v1/dsr/{dsr_id}").json()["status"] == before
    denials = audit_entries(admin, "console.csrf_refused")
    assert [(e["actor"], e["outcome"]) for e in denials] == [("officer-li", "denied")] * 2
    token = csrf_of(officer, f"/console/dsr/{dsr_id}")
    done = officer.post(f"/console/dsr/{dsr_id}/reject",
                        data={"reason": "manifestly unfounded", "csrf": token})
    assert done.status_code == 303
    assert admin.get(f"/v1/dsr/{dsr_id}").json()["status"] == "rejected"
    [entry] = audit_entries(admin, "dsr.rejected")
    assert entry["details"]["reason"] == "manifestly unfounded"
    assert entry["actor"] == "officer-li"
    assert entry["roles"] == ["compliance_officer"]


def test_a_person_without_the_scope_is_refused_and_audited(live: LiveServer,
                                                           admin: httpx.Client) -> None:
    support = sign_in(live, "support", sub="agent-wang")
    for path in ("/console/dsr", "/console/access", "/console/audit"):
        answer = support.get(path)
        assert answer.status_code == 403, path
        assert "needs the scope" in answer.text
    denied = audit_entries(admin, "auth.scope_denied")
    assert [(e["actor"], e["details"]["required"]) for e in denied] == [
        ("agent-wang", "dsr:manage"), ("agent-wang", "access:approve"),
        ("agent-wang", "audit:read")]


def test_not_signed_in_goes_to_the_sign_in_page_and_sign_out_ends_the_session(
        live: LiveServer) -> None:
    anonymous = live.client()
    answer = anonymous.get("/console/dsr")
    assert (answer.status_code, answer.headers["location"]) == (303, "/console/login")
    officer = sign_in(live)
    cookie = officer.cookies["pgw_console"]
    out = officer.post("/console/logout", data={"csrf": csrf_of(officer, "/console/dsr")})
    assert (out.status_code, out.headers["location"]) == (303, "/console/login")
    replay = live.client()
    replay.cookies.set("pgw_console", cookie)
    assert replay.get("/console/dsr").headers["location"] == "/console/login"


def test_language_follows_accept_language_and_the_switch(live: LiveServer) -> None:
    client = live.client()
    assert "<h1>登录</h1>" in client.get("/console/login",
                                        headers={"Accept-Language": "zh-CN,zh;q=0.9"}).text
    assert "<h1>Sign in</h1>" in client.get("/console/login").text
    client.get("/console/lang", params={"to": "zh", "next": "/console/login"})
    assert "<h1>登录</h1>" in client.get("/console/login").text


def test_the_switch_goes_back_only_to_a_console_page(live: LiveServer) -> None:
    client = live.client()
    for back, expected in (("/console/login", "/console/login"),
                           ("/console/../privacy", "/console"), ("//evil.example", "/console")):
        answer = client.get("/console/lang", params={"to": "en", "next": back})
        assert answer.headers["location"] == expected


@pytest.mark.parametrize("sub", ["sup1 ", "system:dsr", "privacy-centre", "a b", ""])
def test_development_names_are_plain_and_not_the_gateways_own(live: LiveServer,
                                                               sub: str) -> None:
    client = live.client()
    page = client.get("/console/login")
    token = page.text.split('name="login_token" value="')[1].split('"')[0]
    answer = client.post("/console/login/dev", data={"sub": sub, "profile": "officer",
                                                      "login_token": token})
    if sub == "sup1 ":  # trimmed: the same person as "sup1"
        assert answer.status_code == 303
        assert "sup1" in client.get("/console", follow_redirects=True).text
    else:
        assert answer.status_code == 403, answer.text


@pytest.fixture
def prod_app(make_settings: Callable[..., Settings], tmp_path: Path) -> FastAPI:
    keys = tmp_path / "keys"
    keys.mkdir(mode=0o700)
    for name in ("audit.pem", "receipts.pem"):
        (keys / name).write_bytes(generate_pem())
        (keys / name).chmod(0o600)
    settings = make_settings(
        env="prod", jwt_secret=PROD_SECRET, audit_signing_key_file=keys / "audit.pem",
        receipt_signing_key_file=keys / "receipts.pem", allow_sqlite_in_prod=True)
    settings.data_dir.mkdir(mode=0o700)
    return create_app(settings)


def test_no_development_sign_in_in_production(
        prod_app: FastAPI, start_server: Callable[[FastAPI], LiveServer]) -> None:
    live = start_server(prod_app)
    client = live.client()
    page = client.get("/console/login")
    assert page.status_code == 200
    assert "/console/login/dev" not in page.text
    answer = client.post("/console/login/dev", data={"sub": "me", "profile": "officer",
                                                      "login_token": "a" * 32})
    assert answer.status_code == 403
    assert "PGW_ENV=dev" in answer.text
    login_cookie = next(c for c in page.headers.get_list("set-cookie")
                        if c.startswith("pgw_console_login="))
    assert "secure" in login_cookie.lower()


def test_an_operator_ends_every_session_of_a_person(
        live: LiveServer, admin: httpx.Client, settings: Settings,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from app.cli import main as pgw

    laptop, phone = sign_in(live), sign_in(live)
    other = sign_in(live, "auditor", sub="auditor-zhao")
    for key, value in {"PGW_DATABASE_URL": settings.sqlalchemy_url,
                       "PGW_DATA_DIR": str(settings.data_dir),
                       "PGW_POLICY_DIR": str(settings.policy_dir),
                       "PGW_JWT_SECRET": TEST_SECRET, "PGW_JWT_ISSUER": TEST_ISSUER}.items():
        monkeypatch.setenv(key, value)
    assert pgw(["console", "sign-out", "officer-li", "--operator", "alice"]) == 0
    assert "officer-li: 2 console session(s) ended" in capsys.readouterr().out
    for client in (laptop, phone):
        assert client.get("/console/dsr").headers["location"] == "/console/login"
    assert other.get("/console/audit").status_code == 200
    [revoked] = audit_entries(admin, "console.sessions_revoked")
    assert (revoked["actor"], revoked["details"]) == \
        ("operator:alice", {"sub": "officer-li", "sessions": 2})


def test_nobody_decides_their_own_access_request(live: LiveServer, admin: httpx.Client) -> None:
    requester = live.client(make_token(sub="analyst-chen", scope="records:read",
                                       roles=["support_agent"]))
    filed = requester.post("/v1/access-requests", json={
        "subject_id": "cust-9", "fields": ["email"], "purpose": "customer_support",
        "justification": "Customer asked us to confirm the address", "duration": "PT1H"})
    assert filed.status_code == 201, filed.text
    request_id = filed.json()["id"]
    same = sign_in(live, "approver", sub="analyst-chen")
    page = same.get("/console/access").text
    assert "Your own request: someone else decides." in page
    assert f"/console/access/{request_id}/approve" not in page
    forged = same.post(f"/console/access/{request_id}/approve",
                       data={"csrf": csrf_of(same, "/console/access")})
    assert forged.status_code == 403
    assert "cannot approve or deny their own request" in forged.text
    assert requester.get(f"/v1/access-requests/{request_id}").json()["status"] == "pending"
    [refused] = audit_entries(admin, "access.approved")
    assert (refused["actor"], refused["outcome"]) == ("analyst-chen", "denied")
    denied = sign_in(live, "approver", sub="approver-sun").post(
        f"/console/access/{request_id}/deny",
        data={"csrf": csrf_of(sign_in(live, "approver", sub="approver-sun"), "/console/access"),
              "reason": "not needed"})
    assert denied.status_code == 403  # that form's token belongs to another session
