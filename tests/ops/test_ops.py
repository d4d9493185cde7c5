from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from app.config import Settings
from app.main import create_app
from tests.databases import DatabaseFactory
from tests.server import LiveServer
from tests.tokens import make_token


def test_healthz(live: LiveServer) -> None:
    assert live.client().get("/healthz").json() == {"status": "ok"}


def test_readyz_when_ready(live: LiveServer) -> None:
    response = live.client().get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ready"
    assert body["reasons"] == []
    assert len(body["policy_version"]) == 16


def test_readyz_unmigrated_database(make_settings: Callable[..., Settings],
                                    start_server: Callable[..., LiveServer],
                                    databases: DatabaseFactory) -> None:
    settings = make_settings(database_url=databases.new(migrated=False))
    response = start_server(create_app(settings)).client().get("/readyz")
    assert response.status_code == 503
    assert "pgw migrate" in response.json()["reasons"][0]


def test_readyz_without_audit_key(make_settings: Callable[..., Settings],
                                  start_server: Callable[..., LiveServer],
                                  tmp_path: Path) -> None:
    key = tmp_path / "audit.pem"
    key.write_text("not a key")
    key.chmod(0o600)
    server = start_server(create_app(make_settings(audit_signing_key_file=key)))
    response = server.client().get("/readyz")
    assert response.status_code == 503
    assert "audit signing key" in response.json()["reasons"][0]
    checkpoint = server.client(make_token()).post("/v1/audit/checkpoints")
    assert checkpoint.status_code == 503


def test_metrics_count_requests_by_route_template(live: LiveServer) -> None:
    client = live.client(make_token())
    client.get("/v1/audit")
    client.get("/v1/audit/verify")
    live.client().get("/v1/no/such/thing/13812345678")
    text = live.client().get("/metrics").text
    assert 'pgw_http_requests_total{method="GET",route="/v1/audit",status="200"} 1.0' in text
    assert 'route="unmatched",status="404"' in text
    assert "13812345678" not in text
    assert "pgw_http_request_duration_seconds_bucket" in text
    assert "pgw_audit_append_failures_total 0.0" in text
