"""The operator's branding and languages, and where codes go without an SMTP server."""

from __future__ import annotations

import http.server
import json
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from fastapi import FastAPI

from app.config import Settings, production_problems
from app.main import create_app
from app.privacy import delivery
from app.webhooks import outbox
from tests.privacy.conftest import ALICE, ask_code, browser, enter_code
from tests.server import LiveServer, wait_for

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
    for smuggled in ("https://evil.example;sandbox/x.png", "https://a.example/x.png;script-src",
                     "https://a.example/x.png?q='unsafe-inline'"):  # no directive rides along
        with pytest.raises(ValueError, match="privacy_logo_url"):
            make_settings(privacy_logo_url=smuggled)
    with pytest.raises(ValueError, match="PGW_PRIVACY_LANGUAGES"):
        make_settings(privacy_languages="fr")


def _sink(settings: Settings, name: str) -> list[dict[str, str]]:
    """The sink's lines once one is written whole (the code is sent after the answer)."""
    path = delivery.sink_dir(settings) / name

    def whole() -> str | None:
        text = path.read_text(encoding="utf-8") if path.exists() else ""
        return text if text.endswith("\n") else None

    written = wait_for(whole, timeout=30, what=f"a line in {name}")
    return [json.loads(line) for line in written.splitlines()]


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
    with_gateway = Settings(env="prod", sms_webhook_url="https://sms.example/hook")
    assert delivery.configured(with_gateway, "phone")
    assert any(p.startswith("PGW_SMS_WEBHOOK_SECRET") for p in production_problems(with_gateway))


class _Gateway(http.server.BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[dict[str, str], bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


def test_phone_codes_go_to_the_sms_gateway_signed(
        make_settings: Callable[..., Settings], admin: httpx.Client,
        people: dict[str, dict[str, str]],
        start_server: Callable[[FastAPI], LiveServer]) -> None:
    receiver = http.server.HTTPServer(("127.0.0.1", 0), _Gateway)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        settings = make_settings(
            sms_webhook_url=f"http://127.0.0.1:{receiver.server_port}/sms",
            sms_webhook_secret="gateway-secret", webhook_allow_hosts="127.0.0.1")
        live = start_server(create_app(settings))
        client = browser(live)
        assert ask_code(client, "138 1234 5678", channel="phone").status_code == 303
        deadline = time.monotonic() + 10
        while not _Gateway.received and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        receiver.shutdown()
    [(headers, body)] = _Gateway.received
    sent = json.loads(body)
    assert sent["to"] == "138 1234 5678"
    stamp = int(headers["PGW-Signature"].split(",")[0].removeprefix("t="))
    assert headers["PGW-Signature"] == outbox.signature("gateway-secret", stamp, body)
    assert sent["text"].startswith("Your code for the Privacy centre is ")
    code = sent["text"].removeprefix("Your code for the Privacy centre is ")[:6]
    assert enter_code(client, code).headers["location"] == "/privacy/home"
    assert not (delivery.sink_dir(settings) / "sms.jsonl").exists()
