"""What an attacker tried across the whole API: text that is not Unicode, numbers that are not
finite, missing response headers, unlimited callers, long-lived or oddly typed tokens, denials
that left no trace, a world-readable data directory."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from app.audit.models import AuditEntry
from app.auth.limits import RateLimiter
from app.config import Settings
from app.main import create_app
from app.runtime import open_runtime
from tests.audit_log import sequenced
from tests.gateway import make_record
from tests.server import LiveServer, ManualClock
from tests.test_routes import _scopes, api_routes
from tests.tokens import claims, make_token

WRITER = make_token(sub="svc-crm", scope="records:write records:read pii:scan",
                    roles=["support_agent"])


def raw_post(client: httpx.Client, path: str, text: str) -> httpx.Response:
    return client.post(path, content=text.encode(), headers={"Content-Type": "application/json"})


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/v1/pii/scan", '{"text": "call \\ud800 now"}', "text"),
    ("/v1/pii/redact", '{"text": "x", "operators": {"\\udfff": {"type": "mask"}}}', "operators"),
    ("/v1/records", '{"subject_id": "c-1", "purpose": "account_management", '
                    '"record_type": "customer_profile", "data": {"name": "\\udc00"}}',
     "data.name"),
    ("/v1/records", '{"subject_id": "c-1", "purpose": "account_management", '
                    '"record_type": "customer_profile", "data": {"name": "x", '
                    '"phone": 1e999999}}', "data.phone"),
    ("/v1/protect", '{"subject_id": "\\ud800", "purpose": "account_management", '
                    '"record_type": "customer_profile", "data": {}}', "subject_id"),
])
def test_text_that_is_not_unicode_and_infinite_numbers_are_named(
        live: LiveServer, path: str, body: str, field: str) -> None:
    response = raw_post(live.client(WRITER), path, body)
    assert response.status_code == 422, response.text
    assert field in response.text
    assert "surrogate" in response.text or "finite" in response.text


def test_a_surrogate_pair_is_text_like_any_other(live: LiveServer) -> None:
    response = raw_post(live.client(WRITER), "/v1/pii/scan", '{"text": "ok \\ud83d\\ude00"}')
    assert response.status_code == 200, response.text


def test_every_response_carries_the_security_headers(live: LiveServer) -> None:
    client = live.client(WRITER)
    responses = [client.get("/healthz"), live.client().get("/v1/audit"),
                 client.get("/v1/records/nope", params={"purpose": "customer_support"}),
                 client.post("/v1/records", json=make_record()),
                 client.post("/v1/pii/scan", content=b"x" * 2_000_000)]
    assert [r.status_code for r in responses] == [200, 401, 404, 201, 413]
    for response in responses:
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-frame-options"] == "DENY"
        assert "default-src 'none'" in response.headers["content-security-policy"]
        assert response.headers["referrer-policy"] == "no-referrer"
        assert "strict-transport-security" not in response.headers  # dev serves plain http


def audit_entries(settings: Settings, action: str) -> list[AuditEntry]:
    runtime = open_runtime(settings)
    try:
        sequenced(runtime)
        with runtime.session_factory() as session:
            return list(session.scalars(select(AuditEntry).where(AuditEntry.action == action)
                                        .order_by(AuditEntry.seq)))
    finally:
        runtime.close()


def test_callers_are_limited_per_route_class_with_429_and_retry_after(
        make_settings: Callable[..., Settings],
        start_server: Callable[..., LiveServer]) -> None:
    settings = make_settings(rate_limits="default=0,records=1/3", pii_chars_per_second=100)
    app, clock = create_app(settings), ManualClock()
    app.state.rate_limiter = RateLimiter(app.state.rate_limiter.limits, clock=clock)
    server = start_server(app)
    client = server.client(WRITER)
    statuses = [client.post("/v1/records", json=make_record()).status_code for _ in range(6)]
    assert statuses[:3] == [201, 201, 201]
    refused = client.post("/v1/records", json=make_record())
    assert refused.status_code == 429
    assert refused.json()["type"] == "urn:pgw:problem:rate-limited"
    assert int(refused.headers["retry-after"]) >= 1
    # another caller, and another class of route, have budgets of their own
    other = server.client(make_token(sub="svc-other", scope="records:write"))
    assert other.post("/v1/records", json=make_record()).status_code == 201
    assert client.get("/v1/audit").status_code == 403
    clock.advance(0.9)
    assert client.post("/v1/records", json=make_record()).status_code == 429
    clock.advance(0.2)
    assert client.post("/v1/records", json=make_record()).status_code == 201
    # the PII routes also count characters: 200 at once, then 100 a second
    assert client.post("/v1/pii/scan", json={"text": "x" * 150}).status_code == 200
    scanned = client.post("/v1/pii/scan", json={"text": "y" * 150})
    assert scanned.status_code == 429, scanned.text
    # refusals are audited, but not one entry per refusal
    limited = audit_entries(settings, "auth.rate_limited")
    assert [e.details["route_class"] for e in limited] == ["records", "pii-characters"]
    assert all(e.actor == "svc-crm" and e.outcome == "denied" for e in limited)


@pytest.mark.parametrize(("overrides", "reason"), [
    (lambda now: {"exp": str(now + 600)}, "'exp' must be a number"),
    (lambda now: {"iat": True}, "'iat' must be a number"),
    (lambda now: {"exp": now + 3 * 86400}, "lives longer than 86400 s"),
])
def test_tokens_with_odd_times_or_long_lives_are_refused(
        live: LiveServer, overrides: Callable[[int], dict[str, Any]], reason: str) -> None:
    """The times are taken when the test runs: taken at collection, a run of over ten minutes
    turned the first case into an expired token."""
    import jwt

    from tests.tokens import TEST_SECRET

    token = jwt.encode({**claims(scope="records:read"), **overrides(int(time.time()))},
                       TEST_SECRET, algorithm="HS256")
    response = live.client(token).get("/v1/records/x", params={"purpose": "customer_support"})
    assert response.status_code == 401
    assert reason in response.json()["detail"]


def _path(template: str) -> str:
    return re.sub(r"\{[^}]+\}", "x", template)


def test_every_scope_denial_is_audited(settings: Settings, live: LiveServer) -> None:
    """Walks every scoped API route with a valid token that has none of its scopes (the web
    pages, outside the API document, are signed into instead: tests/console)."""
    routes = [r for r in api_routes(create_app(settings).routes)
              if _scopes(r.dependant) and r.include_in_schema]
    client = live.client(make_token(sub="curious", scope="nothing:at-all"))
    expected = []
    for route in routes:
        for method in sorted((route.methods or set()) - {"HEAD"}):
            response = client.request(method, _path(route.path), json={})
            assert response.status_code == 403, (method, route.path, response.text)
            expected.append(f"route:{method} {route.path}")
    denied = audit_entries(settings, "auth.scope_denied")
    assert sorted(e.resource or "" for e in denied) == sorted(expected)
    assert {e.actor for e in denied} == {"curious"}
    assert len(expected) > 40


def test_metrics_can_require_a_token(make_settings: Callable[..., Settings],
                                     start_server: Callable[..., LiveServer]) -> None:
    server = start_server(create_app(make_settings(metrics_require_token=True)))
    assert server.client().get("/metrics").status_code == 401
    assert server.client(WRITER).get("/metrics").status_code == 403
    allowed = server.client(make_token(scope="metrics:read")).get("/metrics")
    assert allowed.status_code == 200
    assert "pgw_jobs" in allowed.text


def test_a_loose_data_directory_is_tightened(make_settings: Callable[..., Settings],
                                             tmp_path: Path) -> None:
    data = tmp_path / "loose"
    data.mkdir(mode=0o755)
    data.chmod(0o755)
    open_runtime(make_settings(data_dir=data)).close()
    assert data.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize(("data", "field", "reason"), [
    ({"birth_date": "9999-12-31"}, "data.birth_date", "out of range"),
    ({"birth_date": "2199-01-01"}, "data.birth_date", "in the future"),
    ({"email": "a@" + "b" * 300 + ".cn"}, "data.email", "not an e-mail address"),
    ({"email": "a@-bad-.cn"}, "data.email", "not an e-mail address"),
])
def test_values_out_of_any_sensible_range_are_named(live: LiveServer, data: dict[str, str],
                                                    field: str, reason: str) -> None:
    body = make_record(purpose="account_management")
    body["data"].update(data)
    response = live.client(WRITER).post("/v1/records", json=body)
    assert response.status_code == 422, response.text
    errors = response.json()["errors"]
    assert any(e["field"] == field and e["reason"].startswith(reason) for e in errors), errors


@pytest.mark.parametrize("amount", ["1e999999", "1E+16", "0.0000000000001", 1e300])
def test_amounts_out_of_range_are_refused(amount: object) -> None:
    from app.policy.loader import load_policy
    from app.records.validation import normalise
    from tests.conftest import REPO

    spec = load_policy(REPO / "policies").body.record_types["order"].fields["amount"]
    with pytest.raises(ValueError, match="out of range"):
        normalise(spec, amount)
    assert normalise(spec, "199.99") == "199.99"
