"""The operator's branding and languages, and where codes go without an SMTP server."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from app.privacy import delivery
from tests.privacy.conftest import ALICE, ask_code, browser, enter_code
from tests.server import LiveServer

LOGO = b'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 1 1"/>'


def test_the_operator_brands_the_centre(
        make_settings: Callable[..., Settings], tmp_path: Path,
        start_server: Callable[[FastAPI], LiveServer]) -> None:
    logo = tmp_path / "logo.svg"
    logo.write_bytes(LOGO)
    live = start_server(create_app(make_settings(
        privacy_name="Acme Retail", privacy_logo_file=logo, privacy_primary_colour="#aa3300",
        privacy_accent_colour="#fff4ee", privacy_officer_contact="dpo@acme.example",
        privacy_languages="en")))
    client = browser(live, **{"Accept-Language": "zh-CN"})
    page = client.get("/privacy")
    assert '<html lang="en">' in page.text  # Chinese is not offered
    assert "<title>Acme Retail</title>" in page.text
    assert '<img src="/privacy/brand/logo"' in page.text
    assert "dpo@acme.example" in page.text
    assert "/privacy/language/" not in page.text  # one language: no switch
    assert client.get("/privacy/brand/logo").content == LOGO
    css = client.get("/privacy/brand.css")
    assert css.headers["content-type"].startswith("text/css")
    assert "--brand: #aa3300" in css.text
    assert "--brand-soft: #fff4ee" in css.text


def test_an_external_logo_is_allowed_by_the_policy_and_colours_are_checked(
        make_settings: Callable[..., Settings],
        start_server: Callable[[FastAPI], LiveServer]) -> None:
    live = start_server(create_app(make_settings(
        privacy_logo_url="https://cdn.acme.example/logo.png")))
    page = browser(live).get("/privacy")
    assert "img-src 'self' https://cdn.acme.example;" in page.headers["content-security-policy"]
    with pytest.raises(ValueError, match="privacy_primary_colour"):
        make_settings(privacy_primary_colour="red; } body { display: none")
    with pytest.raises(ValueError, match="privacy_logo_url"):
        make_settings(privacy_logo_url="javascript:alert(1)")
    with pytest.raises(ValueError, match="PGW_PRIVACY_LANGUAGES"):
        make_settings(privacy_languages="fr")


def _sink(settings: Settings, name: str) -> list[dict[str, str]]:
    path = delivery.sink_dir(settings) / name
    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_in_development_codes_go_to_the_outbox_files(
        make_settings: Callable[..., Settings], admin: httpx.Client,
        people: dict[str, dict[str, str]],
        start_server: Callable[[FastAPI], LiveServer]) -> None:
    settings = make_settings()  # no PGW_SMTP_HOST
    live = start_server(create_app(settings))
    client = browser(live)
    assert ask_code(client, "+86 138 1234 5678", channel="phone").status_code == 303
    texts = _sink(settings, "sms.jsonl")
    assert [t["to"] for t in texts] == ["+86 138 1234 5678"]
    code = texts[0]["body"].split("is ")[1][:6]
    assert enter_code(client, code).headers["location"] == "/privacy/home"
    ask_code(browser(live), ALICE["email"])
    assert [m["to"] for m in _sink(settings, "email.jsonl")] == [ALICE["email"]]


def test_outside_development_phone_codes_are_not_configured() -> None:
    prod = Settings(env="prod")
    assert not delivery.configured(prod, "phone")
    assert not delivery.configured(prod, "email")
    assert delivery.configured(Settings(env="prod", smtp_host="smtp.example"), "email")
