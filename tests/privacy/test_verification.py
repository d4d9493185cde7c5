"""Proving who one is by a one-time code: the same answer for unknown people, codes that
expire, serve once and die after a few tries, limits, CSRF, cookies and the page's CSP."""

from __future__ import annotations

import re
import statistics
import time

import httpx
from sqlalchemy import update

from app.config import Settings
from app.privacy import web
from app.privacy.models import CodeChallenge
from app.runtime import Runtime
from tests.gateway import audit_entries
from tests.privacy.conftest import ALICE, ask_code, browser, csrf, enter_code, sign_in
from tests.privacy.mailbox import Mailbox
from tests.server import LiveServer

UNKNOWN = "nobody@example.org"


def _shape(response: httpx.Response) -> tuple[int, str | None, list[str]]:
    cookies = [re.sub(r"=[^;]*;", "=…;", c) for c in response.headers.get_list("set-cookie")]
    return response.status_code, response.headers.get("location"), cookies


def _without_tokens(page: str) -> str:
    return re.sub(r'value="[^"]*"', 'value=""', page)


def test_an_unknown_person_gets_the_same_answer_as_a_known_one(
        live: LiveServer, people: dict[str, dict[str, str]], mailbox: Mailbox,
        admin: httpx.Client) -> None:
    known, unknown = browser(live), browser(live)
    known_answer, unknown_answer = ask_code(known, ALICE["email"]), ask_code(unknown, UNKNOWN)
    assert _shape(known_answer) == _shape(unknown_answer)
    assert _shape(known_answer)[:2] == (303, "/privacy/code")
    known_page, unknown_page = known.get("/privacy/code"), unknown.get("/privacy/code")
    assert known_page.status_code == unknown_page.status_code == 200
    assert _without_tokens(known_page.text) == _without_tokens(unknown_page.text)
    mailbox.wait_for_code(ALICE["email"])
    assert mailbox.to(UNKNOWN) == []
    # a guessed code for the unknown address fails like a wrong one for a known address
    wrong_known, wrong_unknown = enter_code(known, "000000"), enter_code(unknown, "000000")
    assert wrong_known.status_code == wrong_unknown.status_code == 400
    assert _without_tokens(wrong_known.text) == _without_tokens(wrong_unknown.text)
    actions = [e["action"] for e in audit_entries(admin) if e["actor"] == "privacy-centre"]
    assert {"privacy.code_sent", "privacy.code_unmatched",
            "privacy.verification_refused"} <= set(actions)


def test_known_and_unknown_take_similar_time(live: LiveServer,
                                             people: dict[str, dict[str, str]]) -> None:
    timings: dict[str, list[float]] = {"known": [], "unknown": []}
    client = browser(live)
    for _ in range(3):  # three codes per hour per address: all of them sent
        for kind, address in (("known", ALICE["email"]), ("unknown", UNKNOWN)):
            token = csrf(client.get("/privacy"))
            started = time.perf_counter()
            response = client.post("/privacy/code", data={
                "csrf_token": token, "channel": "email", "address": address})
            timings[kind].append(time.perf_counter() - started)
            assert response.status_code == 303
    known, unknown = (statistics.median(timings[k]) for k in ("known", "unknown"))
    # the code is sent after the response: what is left is a few queries either way
    assert abs(known - unknown) < 0.1, timings


def test_a_code_opens_a_session_once(live: LiveServer, people: dict[str, dict[str, str]],
                                     mailbox: Mailbox) -> None:
    client = browser(live)
    ask_code(client, ALICE["email"])
    code = mailbox.wait_for_code(ALICE["email"])
    message = mailbox.to(ALICE["email"])[0]
    assert message["From"] == "privacy@shop.example"
    assert "Example Shop" in message.get_content()
    challenge = client.cookies.get(web.CHALLENGE_COOKIE)
    signed_in = enter_code(client, code)
    assert signed_in.status_code == 303
    assert signed_in.headers["location"] == "/privacy/home"
    assert client.get("/privacy/home").status_code == 200
    # the same code again, from a browser that kept the challenge: refused
    other = browser(live)
    other.cookies.set(web.CHALLENGE_COOKIE, challenge or "", path="/privacy")
    assert enter_code(other, code).status_code == 400
    assert other.get("/privacy/home").headers["location"] == "/privacy"


def test_an_expired_code_is_refused(live: LiveServer, people: dict[str, dict[str, str]],
                                    mailbox: Mailbox, runtime: Runtime,
                                    admin: httpx.Client) -> None:
    client = browser(live)
    ask_code(client, ALICE["email"])
    code = mailbox.wait_for_code(ALICE["email"])
    with runtime.session_factory() as session, session.begin():
        session.execute(update(CodeChallenge).values(
            expires_at=CodeChallenge.created_at))  # as if ten minutes had passed
    response = enter_code(client, code)
    assert response.status_code == 400
    assert "wrong, expired or already used" in response.text
    refused = audit_entries(admin, "privacy.verification_refused")
    assert [(e["subject_id"], e["details"]["reason"]) for e in refused] == [("cust-1", "expired")]


def test_wrong_codes_use_up_the_challenge(live: LiveServer, settings: Settings,
                                          people: dict[str, dict[str, str]],
                                          mailbox: Mailbox, admin: httpx.Client) -> None:
    client = browser(live)
    ask_code(client, ALICE["email"])
    code = mailbox.wait_for_code(ALICE["email"])
    wrong = f"{(int(code) + 1) % 10**6:06d}"
    for _ in range(settings.privacy_code_attempts):
        assert enter_code(client, wrong).status_code == 400
    assert enter_code(client, code).status_code == 400  # right, but too late
    reasons = [e["details"]["reason"] for e in audit_entries(admin, "privacy.verification_refused")]
    assert sorted(reasons) == ["too many attempts"] + ["wrong code"] * 5


def test_codes_per_address_and_per_client_are_limited(
        live: LiveServer, settings: Settings, people: dict[str, dict[str, str]],
        mailbox: Mailbox) -> None:
    client = browser(live)
    answers = [_shape(ask_code(client, ALICE["email"]))[:2] for _ in range(4)]
    # the fourth answer looks like the others, but no fourth code is sent
    assert answers == [(303, "/privacy/code")] * 4
    mailbox.wait_for_code(ALICE["email"], count=3)
    time.sleep(0.5)
    assert len(mailbox.to(ALICE["email"])) == settings.privacy_codes_per_hour == 3
    # the withheld challenge opens nothing, whatever the code
    assert enter_code(client, mailbox.wait_for_code(ALICE["email"], count=3)).status_code \
        == 400
    for n in range(settings.privacy_requests_per_hour_per_ip - 4):  # 4 asked above
        assert ask_code(client, f"someone{n}@example.org").status_code == 303
    limited = ask_code(client, "one-more@example.org")
    assert limited.status_code == 429
    assert limited.headers["retry-after"] == "3600"
    assert "Too many codes were asked for from your network" in limited.text
    assert limited.headers["content-type"].startswith("text/html")


def test_forms_without_their_csrf_token_are_refused(
        live: LiveServer, people: dict[str, dict[str, str]], mailbox: Mailbox,
        admin: httpx.Client) -> None:
    client = browser(live)
    client.get("/privacy")
    missing = client.post("/privacy/code", data={"channel": "email",
                                                 "address": ALICE["email"]})
    assert missing.status_code == 403
    # a token made for another browser's cookie does not fit this one's
    other = browser(live)
    forged = client.post("/privacy/code", data={"csrf_token": csrf(other.get("/privacy")),
                                                "channel": "email", "address": ALICE["email"]})
    assert forged.status_code == 403
    time.sleep(0.3)
    assert mailbox.to(ALICE["email"]) == []
    signed_in = sign_in(live, mailbox, ALICE["email"])
    withdrawal = signed_in.post("/privacy/consents/marketing_email/withdraw", data={})
    assert withdrawal.status_code == 403
    refused = audit_entries(admin, "privacy.csrf_refused")
    assert len(refused) == 3
    assert {e["outcome"] for e in refused} == {"denied"}
    # the signed-in person's refusal names them; the anonymous ones name nobody
    assert [e["subject_id"] for e in refused] == [None, None, "cust-1"]
    consents = admin.get("/v1/subjects/cust-1/consents").json()
    assert consents["purposes"]["marketing_email"]["state"] == "granted"


def test_cookies_are_http_only_same_site_and_secure_outside_dev(
        live: LiveServer, people: dict[str, dict[str, str]], mailbox: Mailbox,
        make_settings: object) -> None:
    client = browser(live)
    first = client.get("/privacy")
    csrf_cookie = first.headers["set-cookie"].lower()
    assert "httponly" in csrf_cookie
    assert "samesite=strict" in csrf_cookie
    assert "path=/privacy" in csrf_cookie
    assert "secure" not in csrf_cookie
    ask_code(client, ALICE["email"])
    response = enter_code(client, mailbox.wait_for_code(ALICE["email"]))
    session_cookie = next(c for c in response.headers.get_list("set-cookie")
                          if c.startswith(web.SESSION_COOKIE + "="))
    assert "HttpOnly" in session_cookie
    assert "SameSite=strict" in session_cookie
    assert "Max-Age=1800" in session_cookie
    prod = Settings(env="prod")
    page = web.render.__globals__["HTMLResponse"]("")
    web.cookie(page, prod, web.SESSION_COOKIE, "x")
    assert "Secure" in page.headers["set-cookie"]


def test_pages_send_a_strict_content_security_policy(live: LiveServer) -> None:
    page = browser(live).get("/privacy")
    policy = page.headers["content-security-policy"]
    assert policy == ("default-src 'none'; script-src 'self'; style-src 'self'; "
                      "img-src 'self'; form-action 'self'; base-uri 'none'; "
                      "frame-ancestors 'none'")
    assert "<script>" not in page.text
    assert " style=" not in page.text
    assert re.findall(r'<script src="([^"]+)"', page.text) == ["/privacy/static/privacy.js"]
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
