"""What a verified person does: file requests and follow them, download their export, see and
withdraw consents, opt out (also by Global Privacy Control); only ever for themselves."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import httpx
from sqlalchemy import select

from app.privacy.models import CodeChallenge
from app.runtime import Runtime
from tests.gateway import audit_entries
from tests.privacy.conftest import ALICE, BOB, browser, csrf, sign_in
from tests.privacy.mailbox import Mailbox
from tests.server import LiveServer


def _main(page: str) -> str:
    found = re.search(r"<main>.*</main>", page, re.S)
    assert found is not None
    return found.group(0)


def file_request(client: httpx.Client, **fields: str) -> str:
    token = csrf(client.get("/privacy/home"))
    response = client.post("/privacy/requests", data={"csrf_token": token, **fields})
    assert response.status_code == 303, response.text
    found = re.fullmatch(r"/privacy/requests/(dsr_[0-9a-f]+)", response.headers["location"])
    assert found is not None, response.headers["location"]
    return found.group(1)


def test_an_access_request_runs_at_once_and_its_export_downloads(
        live: LiveServer, people: dict[str, dict[str, str]], mailbox: Mailbox,
        admin: httpx.Client, drain: Callable[[], int]) -> None:
    client = sign_in(live, mailbox, ALICE["email"])
    dsr_id = file_request(client, type="access", jurisdiction="GDPR")
    page = client.get(f"/privacy/requests/{dsr_id}")
    assert page.status_code == 200
    assert 'data-status="received"' in page.text
    assert client.get(f"/privacy/requests/{dsr_id}/export").status_code == 404  # not yet
    drain()
    page = client.get(f"/privacy/requests/{dsr_id}")
    assert 'data-status="completed"' in page.text
    exported = client.get(f"/privacy/requests/{dsr_id}/export", params={"format": "json"})
    assert exported.status_code == 200
    assert exported.headers["content-disposition"] == f'attachment; filename="{dsr_id}.json"'
    document = json.loads(exported.text)
    assert ALICE["email"] in json.dumps(document, ensure_ascii=False)
    stored = admin.get(f"/v1/dsr/{dsr_id}").json()
    assert stored["subject_id"] == "cust-1"
    assert stored["verification"]["method"] == "one_time_code"
    assert stored["verification"]["verified_by"] == "privacy-centre"
    # the legal deadline shown is the one the DSR service set under the chosen law
    assert stored["due_at"][:10] in page.text
    reads = audit_entries(admin, "dsr.export_read")
    assert [(e["actor"], e["subject_id"]) for e in reads] == [("privacy-centre", "cust-1")]


def test_a_correction_names_a_field_and_its_value(
        live: LiveServer, people: dict[str, dict[str, str]], mailbox: Mailbox,
        admin: httpx.Client, drain: Callable[[], int]) -> None:
    client = sign_in(live, mailbox, ALICE["email"])
    token = csrf(client.get("/privacy/home"))
    refused = client.post("/privacy/requests", data={
        "csrf_token": token, "type": "rectification", "jurisdiction": "PIPL",
        "field": "no_such_field", "value": "x"})
    assert refused.status_code == 422
    dsr_id = file_request(client, type="rectification", jurisdiction="PIPL", field="name",
                          value="张伟明")
    drain()
    assert admin.get(f"/v1/dsr/{dsr_id}").json()["status"] == "completed"
    found = admin.get("/v1/subjects/cust-1/records",
                      params={"purpose": "account_management"}).json()
    assert "张伟明" in json.dumps(found, ensure_ascii=False)


def test_an_address_that_verifies_people_is_not_corrected_in_the_centre(
        live: LiveServer, people: dict[str, dict[str, str]], mailbox: Mailbox,
        admin: httpx.Client) -> None:
    """Else Alice could copy Bob's e-mail into her record, and with two holders neither of
    them would get a code again."""
    alice = sign_in(live, mailbox, ALICE["email"])
    home = alice.get("/privacy/home").text
    assert 'value="email"' not in home
    assert 'value="phone"' not in home
    assert 'value="name"' in home
    for field, value in (("email", BOB["email"]), ("phone", "+86 139 0000 0000")):
        refused = alice.post("/privacy/requests", data={
            "csrf_token": csrf(alice.get("/privacy/home")), "type": "rectification",
            "jurisdiction": "GDPR", "field": field, "value": value})
        assert refused.status_code == 422
        assert "privacy officer" in refused.text
    assert [e["details"]["field"] for e in audit_entries(
        admin, "privacy.correction_refused")] == ["email", "phone"]
    assert admin.get("/v1/dsr", params={"subject_id": "cust-1"}).json()["items"] == []
    sign_in(live, mailbox, BOB["email"])  # Bob still gets his codes


def test_consents_show_their_notice_and_withdraw_in_one_step(
        live: LiveServer, people: dict[str, dict[str, str]], mailbox: Mailbox,
        admin: httpx.Client) -> None:
    client = sign_in(live, mailbox, ALICE["email"])
    home = client.get("/privacy/home")
    row = re.search(r'<tr class="consent" data-purpose="marketing_email" '
                    r'data-state="granted">(.*?)</tr>', home.text, re.S)
    assert row is not None
    assert "marketing v1" in row.group(1)
    response = client.post("/privacy/consents/marketing_email/withdraw",
                           data={"csrf_token": csrf(home)})
    assert response.status_code == 303
    assert 'data-purpose="marketing_email" data-state="withdrawn"' in \
        client.get("/privacy/home").text
    state = admin.get("/v1/subjects/cust-1/consents").json()
    assert state["purposes"]["marketing_email"]["state"] == "withdrawn"
    assert state["history"][-1]["channel"] == "web"
    withdrawn = audit_entries(admin, "consent.withdrawn")
    assert [(e["actor"], e["subject_id"], e["purpose"]) for e in withdrawn] == [
        ("privacy-centre", "cust-1", "marketing_email")]


def test_opting_out_and_global_privacy_control(
        live: LiveServer, people: dict[str, dict[str, str]], mailbox: Mailbox,
        admin: httpx.Client) -> None:
    client = sign_in(live, mailbox, ALICE["email"])
    home = client.get("/privacy/home", headers={"Sec-GPC": "1"})
    assert "recorded it as your opt-out" in home.text
    state = admin.get("/v1/subjects/cust-1/consents").json()
    assert state["purposes"]["partner_advertising"]["state"] == "withdrawn"
    assert state["history"][-1]["channel"] == "gpc"
    assert state["purposes"]["marketing_email"]["state"] == "granted"  # not a sale
    again = client.get("/privacy/home", headers={"Sec-GPC": "1"})
    assert "opt-out of sale and sharing is in place" in again.text
    assert len(admin.get("/v1/subjects/cust-1/consents").json()["history"]) == \
        len(state["history"])  # honoured once, not on every page
    bob = sign_in(live, mailbox, BOB["email"])
    page = bob.get("/privacy/home")
    response = bob.post("/privacy/opt-out", data={"csrf_token": csrf(page)})
    assert response.status_code == 303
    assert "You have opted out" in bob.get("/privacy/home").text
    bob_state = admin.get("/v1/subjects/cust-2/consents").json()
    assert bob_state["purposes"]["partner_advertising"]["state"] == "withdrawn"


def test_a_session_shows_its_own_subject_only(
        live: LiveServer, people: dict[str, dict[str, str]], mailbox: Mailbox,
        admin: httpx.Client) -> None:
    alice = sign_in(live, mailbox, ALICE["email"])
    bob = sign_in(live, mailbox, BOB["email"])
    bobs = file_request(bob, type="access", jurisdiction="PIPL")
    alices = file_request(alice, type="erasure", jurisdiction="GDPR")
    assert bob.get(f"/privacy/requests/{bobs}").status_code == 200
    for path in (f"/privacy/requests/{bobs}", f"/privacy/requests/{bobs}/export"):
        answer = alice.get(path)
        assert answer.status_code == 404
        missing = alice.get(path.replace(bobs, "dsr_000000000000000000000000"))
        assert _main(answer.text) == _main(missing.text)
    denied = audit_entries(admin, "privacy.access_denied")
    assert sorted((e["subject_id"], e["resource"], e["details"]["operation"])
                  for e in denied) == sorted([
        ("cust-1", f"dsr:{bobs}", "export"), ("cust-1", f"dsr:{bobs}", "read"),
        ("cust-1", "dsr:dsr_000000000000000000000000", "export"),
        ("cust-1", "dsr:dsr_000000000000000000000000", "read")])
    alice_home = alice.get("/privacy/home").text
    assert alices in alice_home
    assert bobs not in alice_home
    assert "data-state=\"granted\"" not in bob.get("/privacy/home").text  # Alice's consents
    stranger = browser(live)
    assert stranger.get("/privacy/home").headers["location"] == "/privacy"
    assert stranger.get(f"/privacy/requests/{alices}").headers["location"] == "/privacy"
    signed_out = alice.post("/privacy/sign-out",
                            data={"csrf_token": csrf(alice.get("/privacy/home"))})
    assert signed_out.status_code == 303
    assert alice.get("/privacy/home").headers["location"] == "/privacy"


def test_language_from_the_browser_and_the_switch(live: LiveServer) -> None:
    chinese = browser(live, **{"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.5"})
    page = chinese.get("/privacy")
    assert '<html lang="zh">' in page.text
    assert "发送验证码" in page.text
    assert page.headers["content-language"] == "zh"
    switched = chinese.get("/privacy/language/en", params={"next": "/privacy/code"})
    assert switched.status_code == 303
    assert switched.headers["location"] == "/privacy/code"
    assert "Send me a code" in chinese.get("/privacy").text
    outside = chinese.get("/privacy/language/en", params={"next": "//evil.example/"})
    assert outside.headers["location"] == "/privacy"


def test_an_erasure_takes_the_persons_code_challenges_with_it(
        live: LiveServer, people: dict[str, dict[str, str]], mailbox: Mailbox,
        drain: Callable[[], int], runtime: Runtime) -> None:
    def challenges() -> int:
        with runtime.transaction() as session:
            return len(session.scalars(select(CodeChallenge).where(
                CodeChallenge.subject_id == "cust-1")).all())

    alice = sign_in(live, mailbox, ALICE["email"])
    assert challenges() == 1
    dsr_id = file_request(alice, type="erasure", jurisdiction="GDPR")
    drain()
    assert challenges() == 0
    # the session lives on to its expiry, so the person sees the erasure done
    assert 'data-status="completed"' in alice.get(f"/privacy/requests/{dsr_id}").text
