"""The console's OpenID Connect sign-in over plain HTTP at a local identity provider: the
authorization request carries a nonce, and the ID token's signature, issuer, audience, expiry
and nonce are checked; a mismatch is refused and audited."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from app.config import DEV_ISSUER, Settings
from app.main import create_app
from tests.auth.fake_idp import FakeIdP
from tests.server import LiveServer

OFFICER = {"sub": "officer-oidc", "roles": ["compliance_officer"],
           "scope": "openid dsr:manage audit:read"}


@pytest.fixture
def idp() -> Iterator[FakeIdP]:
    provider = FakeIdP()
    provider.user = dict(OFFICER)
    yield provider
    provider.stop()


@pytest.fixture
def console(idp: FakeIdP, make_settings: Callable[..., Settings],
            start_server: Callable[[FastAPI], LiveServer]) -> LiveServer:
    return start_server(create_app(make_settings(
        jwt_issuer=DEV_ISSUER, oidc_issuer=idp.issuer, oidc_client_id="pgw-console")))


def _sign_in(live: LiveServer) -> httpx.Response:
    """The browser's part of the code flow: to the provider and back to the callback."""
    browser = live.client()
    start = browser.get("/console/login/oidc")
    assert start.status_code == 303, start.text
    at_provider = httpx.get(start.headers["location"], follow_redirects=False)
    assert at_provider.status_code == 302
    return browser.get(at_provider.headers["location"], headers={"accept": "text/html"})


def _refusals(idp: FakeIdP, live: LiveServer) -> list[dict[str, Any]]:
    reader = live.client(idp.token({"sub": "reader", "aud": "privacy-gateway",
                                     "scope": "audit:read", "roles": []}))
    return [e for e in reader.get("/v1/audit").json()["items"]
            if e["action"] == "console.sign_in_refused"]


def test_the_sign_in_sends_a_nonce_and_checks_the_id_token(idp: FakeIdP,
                                                           console: LiveServer) -> None:
    signed_in = _sign_in(console)
    assert signed_in.status_code == 303, signed_in.text
    assert signed_in.headers["location"] == "/console"
    second = _sign_in(console)
    assert second.status_code == 303, second.text
    first, other = idp.nonces
    assert first is not None
    assert len(first) >= 40
    assert first != other
    assert _refusals(idp, console) == []


@pytest.mark.parametrize(("change", "reason"), [
    ({"nonce": "a-nonce-of-another-sign-in-000000000000000"}, "nonce"),
    ({"nonce": None}, "nonce"),
    ({"aud": "another-client"}, "aud"),
    ({"iss": "http://127.0.0.1:9/realms/other"}, "iss"),
    ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200}, "expired"),
    ({"key": "foreign"}, "signature"),
])
def test_an_id_token_that_does_not_check_out_is_refused_and_audited(
        idp: FakeIdP, console: LiveServer, change: dict[str, Any], reason: str) -> None:
    if change.pop("key", None):
        idp.id_token_key = "foreign"
    idp.id_token_claims = change
    refused = _sign_in(console)
    assert refused.status_code == 403, refused.text
    assert refused.headers["content-type"].startswith("text/html")
    assert reason in refused.text
    assert "pgw_console=" not in refused.headers.get("set-cookie", "")
    [entry] = _refusals(idp, console)
    assert (entry["outcome"], entry["details"]["method"]) == ("denied", "oidc")
    assert reason in entry["details"]["reason"]
