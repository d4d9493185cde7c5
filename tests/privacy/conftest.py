"""Fixtures of the privacy centre: a real SMTP receiver, the gateway sending codes to it, people
with records and consents, and browser-like HTTP clients."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator

import httpx
import pytest

from app.config import Settings
from tests.gateway import grant_consent, make_record
from tests.privacy.mailbox import Mailbox
from tests.server import LiveServer

ALICE = {"email": "Zhang.Wei@Example.cn", "subject_id": "cust-1"}
BOB = {"email": "li.na@example.cn", "subject_id": "cust-2"}
_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    box = Mailbox().start()
    yield box
    box.stop()


@pytest.fixture
def settings(make_settings: Callable[..., Settings], mailbox: Mailbox) -> Settings:
    return make_settings(smtp_host="127.0.0.1", smtp_port=mailbox.port, smtp_starttls=False,
                         smtp_from="privacy@shop.example", privacy_codes_per_hour=3,
                         privacy_requests_per_hour_per_ip=12, privacy_name="Example Shop")


@pytest.fixture
def people(admin: httpx.Client) -> dict[str, dict[str, str]]:
    """Two customers with a profile each; Alice consented to marketing and partner ads."""
    for person in (ALICE, BOB):
        record = make_record(subject_id=person["subject_id"])
        record["data"] = dict(record["data"], email=person["email"])
        if person is BOB:
            record["data"].update(name="李娜", phone="139-0000-1111")
            record["data"].pop("cn_resident_id")
        response = admin.post("/v1/records", json=record)
        assert response.status_code == 201, response.text
    grant_consent(admin, "cust-1", "marketing_email")
    grant_consent(admin, "cust-1", "partner_advertising", separate=True)
    return {"alice": ALICE, "bob": BOB}


def browser(live: LiveServer, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=live.url, follow_redirects=False, timeout=30,
                        headers={"Accept-Language": "en-GB,en;q=0.8", **headers})


def csrf(page: httpx.Response) -> str:
    found = _TOKEN.search(page.text)
    assert found is not None, page.text[:500]
    return found.group(1)


def ask_code(client: httpx.Client, address: str, channel: str = "email") -> httpx.Response:
    token = csrf(client.get("/privacy"))
    return client.post("/privacy/code", data={"csrf_token": token, "channel": channel,
                                              "address": address})


def enter_code(client: httpx.Client, code: str) -> httpx.Response:
    token = csrf(client.get("/privacy/code"))
    return client.post("/privacy/verify", data={"csrf_token": token, "code": code})


def sign_in(live: LiveServer, mailbox: Mailbox, address: str) -> httpx.Client:
    client = browser(live)
    before = len(mailbox.to(address))
    assert ask_code(client, address).status_code == 303
    response = enter_code(client, mailbox.wait_for_code(address, count=before + 1))
    assert response.status_code == 303, response.text
    assert response.headers["location"] == "/privacy/home"
    return client
