"""Fixtures and helpers for tests of the records API: clients with roles, consent, audit."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from app.jobs import worker
from app.runtime import Runtime
from tests.server import LiveServer
from tests.tokens import make_token

PROFILE = {"name": "张伟", "email": "Zhang.Wei@Example.cn", "phone": "138-1234-5678",
           "cn_resident_id": "11010519491231002x", "birth_date": "1949-12-31"}
_NAMES = ("John Smith", "Mary Jones", "Ahmed Khan", "Li Wei", "Olga Petrova", "Juan Perez")
_CITIES = ("London", "Leeds", "Cardiff", "Boston", "Lyon", "Madrid", "Oslo")
# A note whose scan takes a model's time (about 19,500 characters, ten windows, under the 20,000
# a free-text field may hold): no two sentences alike, as a scan reads a repeated window once.
# A scan checks its deadline before each group of windows, so a limit meant to stop it must be
# well under one group's time (0.01 s): with the scan helper reading half the windows, a fast
# machine read a batch of this note and a short one within 0.1 s.
SLOW_NOTE = " ".join(f"Customer {_NAMES[i % 6]} called about order {1000 + i} from "
                     f"{_CITIES[i % 7]}, call back." for i in range(290))
ALL_SCOPES = "records:write records:read consent:write consent:read audit:read dsr:manage"

Clients = Callable[..., httpx.Client]


@pytest.fixture
def clients(live: LiveServer) -> Clients:
    """clients(*roles, sub=..., scope=...): an HTTP client with such a token."""

    def make(*roles: str, sub: str = "svc-crm", scope: str = "records:write records:read",
             ) -> httpx.Client:
        return live.client(make_token(sub=sub, scope=scope, roles=list(roles)))

    return make


@pytest.fixture
def drain(runtime: Runtime) -> Callable[[], int]:
    """Run every due job to the end, as `pgw worker --until-idle` does."""
    return lambda: worker.run(runtime, stop=threading.Event(), until_idle=True)


@pytest.fixture
def admin(clients: Clients) -> httpx.Client:
    """Consent registration, audit reading and data-subject-request management."""
    admin = clients("compliance_officer", sub="ops-admin", scope=ALL_SCOPES)
    for notice_id in ("marketing", "partner_advertising"):
        assert admin.post("/v1/notices", json={
            "notice_id": notice_id, "version": 1, "language": "en",
            "text": f"{notice_id} notice"}).status_code == 201
    return admin


def make_record(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"subject_id": "cust-1", "purpose": "account_management",
                            "record_type": "customer_profile", "data": dict(PROFILE)}
    body.update(overrides)
    return body


def write(client: httpx.Client, **overrides: Any) -> dict[str, Any]:
    response = client.post("/v1/records", json=make_record(**overrides))
    assert response.status_code == 201, response.text
    return dict(response.json())


def read(client: httpx.Client, record_id: str, purpose: str, status: int = 200,
         **params: str) -> dict[str, Any]:
    response = client.get(f"/v1/records/{record_id}", params={"purpose": purpose, **params})
    assert response.status_code == status, response.text
    return dict(response.json())


def grant_consent(admin: httpx.Client, subject_id: str, purpose: str, **extra: Any) -> None:
    notice = {"marketing_email": "marketing", "partner_advertising": "partner_advertising"}
    body = {"subject_id": subject_id, "purpose": purpose, "notice_id": notice.get(purpose),
            "notice_version": 1, "channel": "web", "captured_at": "2026-11-01T10:00:00Z",
            "evidence": {"form_id": "signup-v3"}, "jurisdiction": "PIPL", **extra}
    response = admin.post("/v1/consents", json=body)
    assert response.status_code == 201, response.text


def audit_entries(admin: httpx.Client, action: str | None = None) -> list[dict[str, Any]]:
    response = admin.get("/v1/audit", params={"action": action} if action else {})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])
