"""Delivery resolves the host once, refuses internal addresses unless allowed, connects to the
address it checked, and follows no redirect."""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Callable

import httpx
import pytest

from app.config import Environment
from app.runtime import Runtime
from app.webhooks.models import Webhook
from tests.webhooks.conftest import Network, Receiver, deliver, last_error, publish

Receivers = Callable[..., Receiver]


@pytest.fixture
def admin(live: object, clients: Callable[..., httpx.Client]) -> httpx.Client:
    return clients("compliance_officer", sub="ops-admin", scope="dsr:manage audit:read")


def _register(admin: httpx.Client, url: str) -> dict[str, str]:
    registered = admin.post("/v1/webhooks", json={"url": url, "events": ["subject.erased"]})
    assert registered.status_code == 201, registered.text
    return dict(registered.json())


def test_an_allowed_loopback_receiver_gets_the_signed_event(
        admin: httpx.Client, runtime: Runtime, network: Network,
        receivers: Receivers) -> None:
    receiver = receivers()
    hook = _register(admin, receiver.url)
    event_id = publish(runtime)
    assert deliver(runtime) == "done"
    [(path, headers, body)] = receiver.requests
    assert path == "/hooks"
    assert headers["pgw-event-id"] == event_id
    assert json.loads(body)["data"] == {"subject_id": "cust-1"}
    timestamp = headers["pgw-signature"].split(",")[0].removeprefix("t=")
    mac = hmac.new(hook["secret"].encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    assert headers["pgw-signature"] == f"t={timestamp},v1={mac.hexdigest()}"
    assert network.refused == []


@pytest.mark.parametrize("addresses", [
    ["169.254.169.254"], ["10.0.0.1"], ["127.0.0.2"], ["::ffff:10.0.0.1"], ["::ffff:127.0.0.2"],
    ["64:ff9b::a9fe:a9fe"], ["fd00:ec2::254"], ["93.184.215.14", "192.168.0.7"],
    ["0.0.0.0"], ["100.100.100.200"], ["::1"]])  # noqa: S104 - an answer, not a binding
def test_a_name_that_resolves_to_an_internal_address_is_refused_at_delivery(
        admin: httpx.Client, runtime: Runtime, network: Network, receivers: Receivers,
        addresses: list[str]) -> None:
    receiver = receivers()
    network.names["hooks.example.cn"] = [addresses]
    _register(admin, f"http://hooks.example.cn:{receiver.port}/hooks")
    publish(runtime)
    assert deliver(runtime) == "retry"
    assert "PGW_WEBHOOK_ALLOW_HOSTS" in last_error(runtime)
    assert network.lookups.count("hooks.example.cn") == 1
    assert network.refused == []  # nothing was even tried
    assert receiver.requests == []


def test_the_connection_goes_to_the_address_that_was_checked(
        admin: httpx.Client, runtime: Runtime, network: Network,
        receivers: Receivers) -> None:
    """DNS rebinding: the first answer is public and passes, later ones point inside."""
    receiver = receivers()
    network.names["hooks.example.cn"] = [["93.184.215.14"], ["127.0.0.1"]]
    _register(admin, f"http://hooks.example.cn:{receiver.port}/hooks")
    publish(runtime)
    assert deliver(runtime) == "retry"  # the public address refuses the test's connection
    assert network.lookups.count("hooks.example.cn") == 1
    assert network.refused == ["93.184.215.14"]
    assert receiver.requests == []


def test_an_allowed_name_is_reached_at_its_checked_address_with_its_host_header(
        make_settings: Callable[..., object], runtime: Runtime, admin: httpx.Client,
        network: Network, receivers: Receivers) -> None:
    receiver = receivers()
    network.names["hooks.example.cn"] = [["127.0.0.1"], ["10.0.0.1"]]
    _register(admin, f"http://hooks.example.cn:{receiver.port}/hooks?tenant=7")
    publish(runtime)
    assert deliver(runtime) == "done"
    [(path, headers, _)] = receiver.requests
    assert (path, headers["host"]) == ("/hooks?tenant=7", f"hooks.example.cn:{receiver.port}")
    assert network.lookups.count("hooks.example.cn") == 1
    assert network.refused == []


@pytest.mark.parametrize("location", ["ftp://127.0.0.1/x", "http://{other}/hooks",
                                      "http://169.254.169.254/latest/meta-data/"])
def test_redirects_are_a_failed_delivery(admin: httpx.Client, runtime: Runtime,
                                         network: Network, receivers: Receivers,
                                         location: str) -> None:
    other = receivers()
    redirecting = receivers("redirect", location.format(other=f"127.0.0.1:{other.port}"))
    _register(admin, redirecting.url)
    publish(runtime)
    assert deliver(runtime) == "retry"
    assert "answered 302: redirects are not followed" in last_error(runtime)
    assert len(redirecting.requests) == 1
    assert other.requests == []
    assert network.refused == []


def test_production_delivers_only_over_https(admin: httpx.Client, runtime: Runtime,
                                             network: Network, receivers: Receivers) -> None:
    """A URL stored in development (or before this rule) is checked again at delivery."""
    receiver = receivers()
    _register(admin, receiver.url)
    runtime.settings = runtime.settings.model_copy(update={"env": Environment.PROD})
    publish(runtime)
    assert deliver(runtime) == "retry"
    assert "https in production" in last_error(runtime)
    assert receiver.requests == []


def test_a_url_stored_before_the_checks_is_refused_at_delivery(
        admin: httpx.Client, runtime: Runtime, network: Network, receivers: Receivers) -> None:
    receiver = receivers()
    hook = _register(admin, receiver.url)
    with runtime.transaction() as session:
        webhook = session.get(Webhook, hook["id"])
        assert webhook is not None
        webhook.url = f"http://2130706433:{receiver.port}/hooks"
    publish(runtime)
    assert deliver(runtime) == "retry"
    assert "dotted-quad" in last_error(runtime)
    assert receiver.requests == []
