"""The README's production walkthrough runs as pasted: `pgw init` → `pgw migrate` → `pgw check` →
`pgw serve` and `pgw worker` in the background → an erasure request carried out by the worker, in
a fresh directory on a fresh (unmigrated) database, with a token signed by an identity provider's
key that the gateway knows only from a JWKS file."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import jwt
import psycopg

from tests.databases import DatabaseFactory, _admin_dsn, as_role, login_roles
from tests.ops.conftest import IDP_ISSUER, identity_provider
from tests.server import free_port
from tests.test_readme import REPO, marked_blocks
from tests.tokens import claims

MARK = "<!-- production-walkthrough -->"
VALUES = "<!-- production-walkthrough: your values -->"
KEY_FILES = ("kek/kek-v1.key", "audit-signing-key.pem", "receipt-signing-key.pem",
             "pii-hash-key")


def _named(block: str) -> set[str]:
    """Every variable the block sets, also in commented-out alternatives."""
    return set(re.findall(r"(?:^|\s)(?:#\s*)?(?:export\s+)?([A-Z][A-Z0-9_]*)=", block, re.M))


def _gone(pid: int) -> bool:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


def _stop(pids: list[int]) -> None:
    """Stop the background processes the walkthrough started, by their ids."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + 30
    for pid in pids:
        while not _gone(pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)


def test_the_production_walkthrough_runs_as_pasted(tmp_path: Path,
                                                   databases: DatabaseFactory) -> None:
    readme = (REPO / "README.md").read_text()
    [values] = marked_blocks(readme, VALUES)
    [block] = marked_blocks(readme, MARK)
    assert "<" not in re.sub(r"<<|<!--|-->", "", block), "a placeholder in the walkthrough"

    # What the operator brings, under the names the README asks for: a database nobody has
    # migrated, an identity provider known by a JWKS file, a port, a token the provider signed.
    idp, private_key = identity_provider(tmp_path)
    token = jwt.encode(claims(iss=IDP_ISSUER, sub="svc-crm",
                              scope="records:write dsr:submit dsr:verify dsr:manage",
                              roles=["compliance_officer"]),
                       private_key, algorithm="RS256", headers={"kid": "k1"})
    database_url = databases.new(migrated=False)
    port = free_port()
    brought = {"OWNER_URL": database_url, "PGW_DATABASE_URL": database_url,
               "SEQUENCER_URL": database_url,
               "PGW_JWT_ISSUER": idp["PGW_JWT_ISSUER"],
               "PGW_JWT_JWKS_FILE": idp["PGW_JWT_JWKS_FILE"],
               "PGW_JWT_ALGORITHMS": idp["PGW_JWT_ALGORITHMS"], "PORT": str(port),
               "TOKEN": token}
    with ExitStack() as cleanup:
        if databases.dialect == "postgresql":  # the roles an administrator made: no superuser
            roles = cleanup.enter_context(login_roles(database_url, "owner", "svc", "seq"))
            with psycopg.connect(_admin_dsn(database_url), autocommit=True) as conn:
                conn.execute(f'ALTER SCHEMA public OWNER TO "{roles["owner"]}"')
            brought.update(OWNER_URL=as_role(database_url, roles["owner"]),
                           PGW_SERVICE_ROLE=roles["svc"], PGW_SEQUENCER_ROLE=roles["seq"],
                           PGW_DATABASE_URL=as_role(database_url, roles["svc"]),
                           SEQUENCER_URL=as_role(database_url, roles["seq"]))
        _walk_through(tmp_path, values, block, brought)


def _walk_through(tmp_path: Path, values: str, block: str, brought: dict[str, str]) -> None:
    assert set(brought) <= _named(values), _named(values)
    database_url = brought["PGW_DATABASE_URL"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("PGW_")}
    env.update(brought, PATH=f"{Path(sys.prefix) / 'bin'}{os.pathsep}{env.get('PATH', '')}")
    if database_url.startswith("sqlite"):
        env["PGW_ALLOW_SQLITE_IN_PROD"] = "true"  # the README's database is PostgreSQL

    shell_dir = tmp_path / "repo"  # a fresh clone's root, as far as the walkthrough reads it
    shell_dir.mkdir()
    (shell_dir / "policies").symlink_to(REPO / "policies")
    pids_file = tmp_path / "pids"
    script = f"trap 'echo $(jobs -p) > {shlex.quote(str(pids_file))}' EXIT\n{block}\n"
    try:
        result = subprocess.run(["bash", "-e", "-c", script], cwd=shell_dir, env=env,
                                capture_output=True, text=True, timeout=300, check=False)
    finally:
        started = [int(pid) for pid in pids_file.read_text().split()] \
            if pids_file.exists() else []
        _stop(started)
    logs = {name: (shell_dir / name).read_text()[-3000:]
            for name in ("serve.log", "worker.log") if (shell_dir / name).exists()}
    assert result.returncode == 0, (result.stdout, result.stderr, logs)
    assert len(started) == 2, (started, logs)

    # init: the environment it printed, and the keys it made
    data = shell_dir / "pgw-data"
    exported = {}
    for line in (shell_dir / "pgw.env").read_text().splitlines():
        word, assignment = shlex.split(line)
        assert word == "export", line
        name, _, value = assignment.partition("=")
        exported[name] = value
    assert exported["PGW_ENV"] == "prod"
    assert exported["PGW_DATA_DIR"] == str(data)
    assert exported["PGW_AUDIT_SIGNING_KEY_FILE"] == str(data / "audit-signing-key.pem")
    for what in ("KEK", "audit signing key", "consent receipt signing key", "keyed-hash key"):
        assert f"created {what} " in result.stderr, result.stderr
    assert "development JWT secret" not in result.stderr
    for name in KEY_FILES:
        assert (data / name).stat().st_mode & 0o777 == 0o600, name
    assert not (data / "dev-jwt-secret").exists()

    out = result.stdout.splitlines()
    assert "configuration ok (PGW_ENV=prod)" in out, result.stdout
    assert "201" in out, result.stdout
    dsr = json.loads(out[-2])
    assert dsr["status"] == "completed", dsr
    assert dsr["type"] == "erasure"
    assert dsr["result"]["records_deleted"] == 1, dsr
    ready = json.loads(out[-1])
    assert ready["status"] == "ready", ready
    assert ready["workers"]["alive"] == 1, ready
    assert ready["workers"]["queued_without_worker"] == 0, ready
    for pid in started:
        assert _gone(pid), pid
