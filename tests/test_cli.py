from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import jwt
import pytest

from app.cli import main as pgw
from app.config import Settings
from tests.server import PGW, pgw_serve
from tests.tokens import TEST_AUDIENCE, TEST_ISSUER, TEST_SECRET


def cli_env(settings: Settings, **extra: str) -> dict[str, str]:
    return {**os.environ, "PGW_DATABASE_URL": settings.sqlalchemy_url,
            "PGW_DATA_DIR": str(settings.data_dir), "PGW_POLICY_DIR": str(settings.policy_dir),
            "PGW_JWT_SECRET": TEST_SECRET, "PGW_JWT_ISSUER": TEST_ISSUER, **extra}


def test_token_is_signed_for_this_service(settings: Settings,
                                          monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    for key, value in cli_env(settings).items():
        monkeypatch.setenv(key, value)
    assert pgw(["token", "--sub", "svc-crm", "--scope", "records:write records:read",
                "--roles", "support_agent,billing", "--ttl", "600"]) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), TEST_SECRET, algorithms=["HS256"],
                        audience=TEST_AUDIENCE, issuer=TEST_ISSUER)
    assert claims["sub"] == "svc-crm"
    assert claims["scope"] == "records:write records:read"
    assert claims["roles"] == ["support_agent", "billing"]
    assert claims["exp"] - claims["iat"] == 600


def test_token_is_refused_in_prod(settings: Settings) -> None:
    result = subprocess.run([PGW, "token", "--sub", "x"], env=cli_env(settings, PGW_ENV="prod"),
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode != 0
    assert "prod" in result.stderr


def test_migrate_brings_a_new_database_to_head(tmp_path: Path, settings: Settings) -> None:
    url = f"sqlite:///{tmp_path / 'fresh.sqlite3'}"
    result = subprocess.run([PGW, "migrate"], env=cli_env(settings, PGW_DATABASE_URL=url),
                            capture_output=True, text=True, timeout=120, check=False)
    assert result.returncode == 0, result.stderr
    assert "database at head" in result.stdout
    assert (tmp_path / "fresh.sqlite3").stat().st_mode & 0o777 == 0o600


def test_metrics_cover_every_worker(settings: Settings) -> None:
    with pgw_serve(cli_env(settings), workers=2) as (_, base):
        for _ in range(29):  # one more was the readiness probe above
            with httpx.Client() as client:  # new connections, so both workers answer some
                assert client.get(f"{base}/healthz").status_code == 200
        text = httpx.get(f"{base}/metrics").text
        assert 'pgw_http_requests_total{method="GET",route="/healthz",status="200"} 30.0' in text
