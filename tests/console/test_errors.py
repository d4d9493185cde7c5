"""Errors a browser meets on the sites are pages in the site's language (the API keeps problem
JSON); refused forms are audited; the audit page's cursor and a hold's subject are checked."""

from __future__ import annotations

import httpx

from tests.console.staff import csrf_of, sign_in
from tests.gateway import audit_entries
from tests.server import LiveServer

HTML = {"accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
CHINESE = {**HTML, "accept-language": "zh-CN,zh;q=0.9"}


def _is_page(answer: httpx.Response, status: int) -> str:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("text/html"), answer.text
    assert "content-security-policy" in answer.headers
    return answer.text


def test_a_browser_meets_html_error_pages_and_the_api_keeps_problem_json(
        live: LiveServer) -> None:
    officer = sign_in(live, "auditor", sub="auditor-ma")
    # no such page, a query the route refuses, a path parameter out of range
    assert "Not found" in _is_page(officer.get("/console/nowhere", headers=HTML), 404)
    assert "未找到" in _is_page(officer.get("/console/nowhere", headers=CHINESE), 404)
    assert "seq" in _is_page(officer.get("/console/audit/0", headers=HTML), 422)
    page = _is_page(officer.get("/console/dsr", headers=HTML), 403)
    assert "needs the scope" in page
    # the centre's pages too, in the centre's language
    centre = live.client()
    assert "未找到" in _is_page(centre.get("/privacy/nowhere", headers=CHINESE), 404)
    # the API answers problem JSON, whatever the Accept header
    for answer in (centre.get("/v1/nowhere", headers=HTML), officer.get("/console/nowhere"),
                   centre.get("/v1/audit", params={"cursor": "%%"}, headers=HTML)):
        assert answer.headers["content-type"] == "application/problem+json", answer.text


def test_an_unreadable_form_is_refused_as_a_page_and_audited(live: LiveServer,
                                                             admin: httpx.Client) -> None:
    officer = sign_in(live)
    for content, kind in ((b"", None), (b"csrf=\xff\xfe", "application/x-www-form-urlencoded"),
                          (b'{"csrf": "x"}', "application/json")):
        headers = {**HTML, **({"content-type": kind} if kind else {})}
        refused = officer.post("/console/holds", content=content, headers=headers)
        assert "form" in _is_page(refused, 422)
    assert admin.get("/v1/legal-holds").json()["items"] == []
    denials = audit_entries(admin, "console.form_refused")
    assert [(e["actor"], e["outcome"]) for e in denials] == [("officer-li", "denied")] * 3


def test_the_audit_page_refuses_a_malformed_cursor(live: LiveServer) -> None:
    auditor = sign_in(live, "auditor", sub="auditor-ma")
    assert auditor.get("/console/audit", headers=HTML).status_code == 200
    for cursor in ("not-a-cursor", "%%", "MQ=="):
        page = _is_page(auditor.get("/console/audit", params={"cursor": cursor}, headers=HTML),
                        422)
        assert "cursor" in page
    # the one the API gives is taken
    assert auditor.get("/console/audit", params={"cursor": "MQ"}).status_code == 200


def test_a_hold_refuses_a_subject_with_control_characters(live: LiveServer,
                                                          admin: httpx.Client) -> None:
    officer = sign_in(live)
    for subject in ("\x00", "cust\x01", "cust\n42", "cust\x7f"):
        refused = officer.post("/console/holds", data={
            "csrf": csrf_of(officer, "/console/holds"), "subject_id": subject,
            "record_type": "", "reason": "Litigation 2026-17"})
        assert "control character" in _is_page(refused, 422) or "NUL" in refused.text
    api = admin.post("/v1/legal-holds", json={"subject_id": "cust\x01", "reason": "Litigation"})
    assert api.status_code == 422, api.text
    assert admin.get("/v1/legal-holds").json()["items"] == []
    # and so does every other way a subject id comes in
    assert admin.get("/v1/subjects/cust%01/consents").status_code == 422
