"""The service starts and works with every outbound connection refused."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx

from app.config import Settings
from tests.server import PGW, free_port, wait_until_up
from tests.tokens import make_token

GUARD = Path(__file__).parent / "netguard"


def test_service_runs_with_outbound_network_refused(settings: Settings, tmp_path: Path) -> None:
    attempts = tmp_path / "net-attempts.log"
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(GUARD), os.environ.get("PYTHONPATH", "")]),
        "PGW_NETGUARD_LOG": str(attempts),
        "PGW_DATABASE_URL": settings.sqlalchemy_url,
        "PGW_DATA_DIR": str(settings.data_dir),
        "PGW_POLICY_DIR": str(settings.policy_dir),
        "PGW_JWT_SECRET": settings.jwt_secret.get_secret_value() if settings.jwt_secret else "",
        "PGW_JWT_ISSUER": settings.jwt_issuer,
    }
    # The guard must really be active in the child: prove it refuses an outside address.
    probe = subprocess.run([sys.executable, "-c", "import socket; socket.create_connection("
                            "('192.0.2.1', 80), timeout=2)"], env=env, capture_output=True,
                           text=True, timeout=60, check=False)
    assert "refused by test guard" in probe.stderr
    attempts.unlink()

    server = subprocess.Popen([PGW, "serve", "--port", str(port)], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        base = f"http://127.0.0.1:{port}"
        wait_until_up(server, f"{base}/readyz")
        headers = {"Authorization": f"Bearer {make_token(scope='audit:read pii:scan')}"}
        # 201, or 204 if nothing was logged since the last checkpoint; the development
        # server's job worker may already have logged its first periodic runs
        checkpoint = httpx.post(f"{base}/v1/audit/checkpoints", headers=headers)
        assert checkpoint.status_code in (201, 204)
        assert httpx.get(f"{base}/v1/audit", headers=headers).status_code == 200
        scan = httpx.post(f"{base}/v1/pii/scan", headers=headers, json={
            "text": "Mail jane@example.com or call +44 20 7946 0958, 客户张伟 13812345678"})
        assert {e["type"] for e in scan.json()["entities"]} >= {
            "EMAIL_ADDRESS", "PHONE_NUMBER", "PERSON"}
        verify = httpx.get(f"{base}/v1/audit/verify", headers=headers).json()
        assert verify["ok"] is True
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert not attempts.exists() or attempts.read_text() == ""
