"""A subject's page shows records as the person's roles allow, masked exactly as the API masks
them for the same roles; consent over time is charted per purpose, with the notices."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html import escape

import httpx

from tests.console.staff import sign_in
from tests.gateway import Clients, grant_consent, write
from tests.server import LiveServer

QUERY = {"subject_id": "cust-1", "purpose": "customer_support"}


def shown_fields(html: str) -> dict[str, tuple[str, str]]:
    """field -> (decision, value) of the records section."""
    return {name: (decision, value.strip()) for name, decision, value in re.findall(
        r'<dd data-field="([^"]+)" data-decision="([^"]*)">([^<]*)', html)}


def test_records_on_the_subject_page_are_masked_as_the_api_masks_them(
        live: LiveServer, admin: httpx.Client, clients: Clients) -> None:
    write(clients(sub="svc-crm"), subject_id="cust-1")
    for profile, roles, sub in (("support", ["support_agent"], "agent-wang"),
                                ("officer", ["compliance_officer"], "officer-li")):
        api = clients(*roles, sub=sub, scope="records:read").get(
            "/v1/subjects/cust-1/records", params={"purpose": "customer_support"})
        assert api.status_code == 200, api.text
        [record] = api.json()["items"]
        page = sign_in(live, profile, sub=sub).get("/console/subjects", params=QUERY)
        assert page.status_code == 200
        expected = {name: (record["access"][name]["decision"], escape(str(value)))
                    for name, value in record["data"].items()}
        assert shown_fields(page.text) == expected
    decisions = {d for d, _ in shown_fields(page.text).values()}
    assert decisions == {"clear"}  # the officer's role sees every field in clear
    support = sign_in(live, "support", sub="agent-wang").get("/console/subjects", params=QUERY)
    assert "masked" in {d for d, _ in shown_fields(support.text).values()}
    assert "张伟" not in support.text
    assert "Needs the scope consent:read." in support.text


def test_consent_given_and_withdrawn_is_charted_per_purpose(
        live: LiveServer, admin: httpx.Client) -> None:
    yesterday = datetime.now(UTC) - timedelta(days=1)
    for subject_id in ("cust-1", "cust-2", "cust-3"):
        grant_consent(admin, subject_id, "marketing_email",
                      captured_at=yesterday.isoformat().replace("+00:00", "Z"))
    assert admin.post("/v1/subjects/cust-2/consents/marketing_email/withdraw").status_code == 200
    page = sign_in(live).get("/console/consents")
    assert page.status_code == 200
    chart = page.text.split('id="chart-marketing_email"')[1].split("</section>")[0]
    bars = re.findall(r'<rect class="(given|withdrawn)"[^>]*data-day="([^"]+)" '
                      r'data-count="(\d+)"', chart)
    today = datetime.now(UTC).date()
    assert sorted(bars) == [("given", str(yesterday.date()), "3"),
                            ("withdrawn", str(today), "1")]
    assert "<td>marketing</td><td>1</td><td>en</td>" in page.text  # the notice and its version
