"""Keyset pagination of the DSR, legal-hold, access-request and webhook lists: a client paging
through a list while rows are added or removed sees every row that stays, once, in order."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from app.config import Settings
from app.dsr.models import LegalHold
from app.runtime import Runtime
from app.schemas import encode_cursor
from tests.gateway import Clients, write

Between = Callable[[int, list[dict[str, Any]]], None]
PAGED = ("/v1/dsr", "/v1/legal-holds", "/v1/access-requests", "/v1/webhooks")


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings(webhook_allow_hosts=("127.0.0.1",))


def page_through(client: httpx.Client, path: str, between: Between,
                 **params: Any) -> list[dict[str, Any]]:
    """Every item of the list, two a page; `between(page, seen)` runs before each next page."""
    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    for page in range(50):
        query = {**params, "limit": 2} | ({"cursor": cursor} if cursor else {})
        response = client.get(path, params=query)
        assert response.status_code == 200, response.text
        seen += response.json()["items"]
        cursor = response.json()["next"]
        if cursor is None:
            return seen
        between(page, seen)
    raise AssertionError("the list never ended")


def ids(items: list[dict[str, Any]]) -> list[str]:
    return [item["id"] for item in items]


def assert_each_once(seen: list[dict[str, Any]], expected: set[str]) -> None:
    assert len(ids(seen)) == len(set(ids(seen))), "a row came twice"
    assert expected - set(ids(seen)) == set(), "a row was missed"


def test_legal_holds_added_or_released_between_pages(admin: httpx.Client) -> None:
    def place(name: str) -> str:
        response = admin.post("/v1/legal-holds", json={"subject_id": name, "reason": "audit"})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    first = [place(f"hold-{n}") for n in range(7)]
    released: list[str] = []

    def between(page: int, seen: list[dict[str, Any]]) -> None:
        place(f"late-{page}")  # newest first: it lands before the cursor
        if page == 1:  # and one already shown leaves the (active) list
            released.append(seen[0]["id"])
            assert admin.post(f"/v1/legal-holds/{released[0]}/release").status_code == 200

    seen = page_through(admin, "/v1/legal-holds", between)
    assert_each_once(seen, set(first))
    assert ids(seen) == list(reversed(first))  # newest first; the late ones came after
    assert released


def test_legal_holds_created_at_the_same_instant_page_by_id(
        admin: httpx.Client, runtime: Runtime) -> None:
    instant = datetime(2026, 11, 1, 9, 0, 0, 123456, tzinfo=UTC)
    made = [f"hold_tie{n:02d}" for n in range(5)]
    with runtime.session_factory.begin() as session:
        session.add_all(LegalHold(id=hold_id, subject_id="tied", reason="tie", created_by="t",
                                  created_at=instant) for hold_id in made)
    seen = page_through(admin, "/v1/legal-holds", lambda page, seen: None, subject_id="tied")
    assert ids(seen) == sorted(made, reverse=True)


def test_data_subject_requests_submitted_between_pages(clients: Clients,
                                                       admin: httpx.Client) -> None:
    crm = clients("compliance_officer", sub="svc-crm", scope="dsr:submit dsr:manage")

    def submit(jurisdiction: str) -> str:
        response = crm.post("/v1/dsr", json={"subject_id": "paged", "type": "access",
                                             "jurisdiction": jurisdiction,
                                             "verification": {"method": "logged_in_session"}})
        assert response.status_code == 202, response.text
        return str(response.json()["id"])

    first = [submit("CCPA") for _ in range(5)]  # due in 45 days
    # due in 30 days: sooner, so before the cursor (an offset would show an item twice)
    late: list[str] = []
    seen = page_through(admin, "/v1/dsr", lambda page, seen: late.append(submit("PIPL")),
                        subject_id="paged")
    assert_each_once(seen, set(first))
    assert ids(seen) == first
    everything = admin.get("/v1/dsr", params={"subject_id": "paged"}).json()["items"]
    assert ids(everything) == late + first  # by deadline, soonest first


def test_access_requests_filed_or_decided_between_pages(clients: Clients) -> None:
    record_id = write(clients())["record_id"]
    agent = clients("support_agent", sub="agent-7")
    supervisor = clients(sub="supervisor-2", scope="access:approve")

    def apply() -> str:
        response = agent.post("/v1/access-requests", json={
            "record_id": record_id, "fields": ["email"], "purpose": "customer_support",
            "justification": "Customer disputes a delivery", "duration": "PT1H"})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    first = [apply() for _ in range(7)]

    def between(page: int, seen: list[dict[str, Any]]) -> None:
        apply()
        if page == 1:  # one already shown is approved: it leaves the pending list
            decided = supervisor.post(f"/v1/access-requests/{seen[0]['id']}/approve",
                                      json={"reason": "ticket 1"})
            assert decided.status_code == 200, decided.text

    seen = page_through(supervisor, "/v1/access-requests", between, status="pending")
    assert_each_once(seen, set(first))
    assert ids(seen) == list(reversed(first))


def test_webhooks_removed_between_pages(admin: httpx.Client) -> None:
    def register(n: int) -> str:
        response = admin.post("/v1/webhooks", json={"url": f"http://127.0.0.1:9/hook-{n}",
                                                    "events": ["subject.erased"]})
        assert response.status_code == 201, response.text
        return str(response.json()["id"])

    first = [register(n) for n in range(7)]

    def between(page: int, seen: list[dict[str, Any]]) -> None:
        # oldest first: the one shown first goes away (an offset would then skip a row)
        assert admin.delete(f"/v1/webhooks/{seen[page]['id']}").status_code == 204
        register(100 + page)

    seen = page_through(admin, "/v1/webhooks", between)
    assert_each_once(seen, set(first))
    assert ids(seen)[:7] == first


@pytest.mark.parametrize("path", PAGED)
def test_a_cursor_not_given_by_the_api_is_a_problem_naming_it(
        path: str, clients: Clients, admin: httpx.Client) -> None:
    reader = clients(sub="supervisor-2", scope="access:approve") \
        if path == "/v1/access-requests" else admin
    for n in range(3):
        assert admin.post("/v1/legal-holds", json={"subject_id": f"c-{n}", "reason": "audit"}) \
            .status_code == 201
    valid = admin.get("/v1/legal-holds", params={"limit": 1}).json()["next"]
    assert valid is not None
    tampered = "A" + valid[1:]  # the first byte of the time, no longer a digit
    for bad in ("!!", "2", encode_cursor("2"), encode_cursor("x"), tampered,
                encode_cursor("2026-11-01T09:00:00 hold_1"),  # no time zone
                encode_cursor("2026-11-01T09:00:00Z"), encode_cursor("2026-13-01T09:00:00Z a"),
                encode_cursor("2026-11-01T09:00:00Z " + "x" * 41)):
        refused = reader.get(path, params={"cursor": bad})
        assert refused.status_code == 422, (path, bad, refused.text)
        assert refused.headers["content-type"] == "application/problem+json"
        assert refused.json()["errors"][0]["field"] == "cursor", bad
