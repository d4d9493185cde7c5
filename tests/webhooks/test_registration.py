"""A webhook URL is checked when it is registered: its form, and hosts internal on their face."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import httpx
import pytest
from pydantic import ValidationError

from app.config import Settings
from app.main import create_app
from app.webhooks import targets
from tests.gateway import Clients
from tests.server import LiveServer
from tests.tokens import make_token

INTERNAL = ["http://127.0.0.1/hooks", "http://2130706433/hooks", "http://0x7f000001/hooks",
            "http://127.1/hooks", "http://0177.0.0.1/hooks", "http://[::1]/hooks",
            "http://[::ffff:127.0.0.1]/hooks", "http://[::ffff:7f00:1]/hooks",
            "http://[64:ff9b::7f00:1]/hooks", "http://[2002:7f00:1::]/hooks",
            "http://169.254.169.254/latest/meta-data/", "http://[64:ff9b::a9fe:a9fe]/x",
            "http://metadata.google.internal/computeMetadata/v1/", "http://10.0.0.1:6379/",
            "http://192.168.1.1/", "http://172.16.0.1/", "http://100.64.0.1/",
            "http://0.0.0.0/", "http://[::]/", "http://224.0.0.1/", "http://240.0.0.1/",
            "http://[fe80::1%25eth0]/", "http://[fd00:ec2::254]/", "http://192.0.0.192/",
            "http://localhost:8080/", "http://LOCALHOST./", "http://api.localhost/",
            "http://redis:6379/", "http://printer.local/", "http://db.internal/"]
MALFORMED = [("https://hooks.example.cn/a\r\nX-Injected: 1", "control characters"),
             ("https://hooks.example.cn/a\tb", "control characters"),
             ("https://hooks.example.cn/\u200bx", "control characters"),
             ("https://hooks.example.cn/a b", "spaces"),
             ("https://hooks.example.cn\\@evil.example/", "backslashes"),
             ("https://user:pw@hooks.example.cn/x", "credentials"),
             ("https://user@hooks.example.cn/x", "credentials"),
             ("ftp://hooks.example.cn/x", "http(s)"),
             ("file:///etc/passwd", "http(s)"),
             ("gopher://hooks.example.cn:70/x", "http(s)"),
             ("https:hooks.example.cn/x", "http(s)"),
             ("https://[::1/x", "http(s)"),
             ("https://[hooks.example.cn]/x", "http(s)"),
             ("https://[v1.fe]/x", "IPv6 address in brackets"),
             ("https://exa%6dple.cn/x", "domain name"),
             ("https://hooks_1.example.cn/x", "domain name"),
             ("https://hooks.example.cn:0/x", "port"),
             ("https://hooks.example.cn:99999/x", "port"),
             ("https://hööks.example.cn/x", "ASCII")]


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()  # no allow-list


@pytest.fixture
def admin(clients: Clients) -> httpx.Client:
    return clients("compliance_officer", sub="ops-admin", scope="dsr:manage audit:read")


def _register(client: httpx.Client, url: str) -> httpx.Response:
    return client.post("/v1/webhooks", json={"url": url, "events": ["subject.erased"]})


@pytest.mark.parametrize("url", INTERNAL)
def test_internal_hosts_are_refused_naming_the_field(admin: httpx.Client, url: str) -> None:
    refused = _register(admin, url)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "url"
    assert "PGW_WEBHOOK_ALLOW_HOSTS" in refused.json()["detail"] or \
        "dotted-quad" in refused.json()["detail"]
    assert admin.get("/v1/webhooks").json()["items"] == []


@pytest.mark.parametrize(("url", "reason"), MALFORMED)
def test_malformed_urls_are_refused_naming_the_field(admin: httpx.Client, url: str,
                                                     reason: str) -> None:
    refused = _register(admin, url)
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "url"
    assert reason in refused.json()["detail"]


def test_public_hosts_are_accepted(admin: httpx.Client) -> None:
    for url in ("https://hooks.example.cn/pgw?tenant=7", "http://93.184.215.14:8443/x",
                "https://[2606:4700::1111]/hooks", "https://[64:ff9b::808:808]/hooks"):
        registered = _register(admin, url)
        assert registered.status_code == 201, registered.text
        assert registered.json()["url"] == url


def test_the_allow_list_lets_an_operator_name_internal_receivers(
        make_settings: Callable[..., Settings],
        start_server: Callable[..., LiveServer]) -> None:
    live = start_server(create_app(make_settings(
        webhook_allow_hosts=("127.0.0.1", "10.1.0.0/16", "receiver.internal"))))
    admin = live.client(make_token(sub="ops-admin", scope="dsr:manage",
                                   roles=["compliance_officer"]))
    for url in ("http://127.0.0.1:8080/hooks", "http://10.1.2.3/hooks",
                "http://receiver.internal/hooks", "http://RECEIVER.internal./hooks"):
        assert _register(admin, url).status_code == 201, url
    for url in ("http://[::1]/hooks", "http://10.2.0.1/hooks", "http://localhost/hooks",
                "http://169.254.169.254/", "http://0x7f000001/hooks"):
        assert _register(admin, url).status_code == 422, url


def test_a_network_in_the_allow_list_does_not_open_metadata_addresses() -> None:
    broad = targets.allow_list(("169.254.0.0/16", "0.0.0.0/0"))
    reason = targets.refusal(ipaddress.ip_address("169.254.169.254"), broad)
    assert reason == "a cloud metadata address"
    exact = targets.allow_list(("169.254.169.254",))
    assert targets.refusal(ipaddress.ip_address("169.254.169.254"), exact) is None


def test_production_accepts_only_https() -> None:
    allow = targets.allow_list(())
    with pytest.raises(targets.Refused, match="https in production"):
        targets.check_registration("http://hooks.example.cn/x", allow=allow,
                                   require_https=True)
    assert targets.check_registration("https://hooks.example.cn/x", allow=allow,
                                      require_https=True).port == 443


@pytest.mark.parametrize("entry", ["http://x", "1.2.3.4/99", "a b", "host:80"])
def test_a_malformed_allow_list_stops_the_service(entry: str) -> None:
    with pytest.raises(ValidationError, match="PGW_WEBHOOK_ALLOW_HOSTS"):
        Settings(webhook_allow_hosts=entry)
