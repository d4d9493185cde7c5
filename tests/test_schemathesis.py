"""Schema-driven fuzzing of every operation over real HTTP: no input gives a 500, and every
answer's status, media type and body are among those the OpenAPI document declares for it."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from app.config import Settings
from app.main import create_app
from tests.server import LiveServer
from tests.tokens import make_token

SCOPES = ("pii:scan records:write records:read consent:write consent:read dsr:submit "
          "dsr:manage audit:read keys:admin access:approve policy:read datasets:export")


def test_no_server_error_anywhere(make_settings: Callable[..., Settings],
                                  start_server: Callable[..., LiveServer],
                                  tmp_path: Path) -> None:
    # unlimited, so the fuzzer reaches every operation instead of a 429
    live = start_server(create_app(make_settings(rate_limits="default=0",
                                                 pii_chars_per_second=0)))
    schemathesis = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [str(schemathesis), "run", f"{live.url}/openapi.json",
         "-H", f"Authorization: Bearer {make_token(scope=SCOPES, roles=['compliance_officer'])}",
         # every status an operation answers with is documented for it, and its body
         # (a problem's `type` included) matches what is documented
         "--checks", "not_a_server_error,negative_data_rejection,ignored_auth,"
         "response_schema_conformance,status_code_conformance,content_type_conformance",
         "--max-examples", "60", "--seed", "1", "--phases", "examples,coverage,fuzzing,stateful",
         "--exclude-path-regex", "/v1/keys/rotate", "--no-color"],
        capture_output=True, text=True, timeout=600, check=False, cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-12000:]
    assert "Server error" not in result.stdout
