"""Signing in to the console over plain HTTP, as a browser would, for the console's tests."""

from __future__ import annotations

import re

import httpx

from tests.server import LiveServer


def form_value(html: str, name: str) -> str:
    found = re.search(rf'name="{name}" value="([^"]+)"', html)
    assert found, f"no {name} in the page"
    return found.group(1)


def sign_in(live: LiveServer, profile: str = "officer", sub: str = "officer-li",
            ) -> httpx.Client:
    """A client holding a console session of `profile` (development sign-in)."""
    client = live.client()
    page = client.get("/console/login")
    assert page.status_code == 200, page.text
    answer = client.post("/console/login/dev", data={
        "sub": sub, "profile": profile, "login_token": form_value(page.text, "login_token")})
    assert answer.status_code == 303, answer.text
    assert answer.headers["location"] == "/console"
    return client


def csrf_of(client: httpx.Client, path: str) -> str:
    return form_value(client.get(path).text, "csrf")
