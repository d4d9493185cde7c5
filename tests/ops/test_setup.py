"""`pgw init` → `pgw check` → `pgw serve`, run as an operator would: commands in a fresh
directory, the environment taken from what `init` printed."""

from __future__ import annotations

import base64
import json
import os
import shlex
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import jwt
import psycopg
import pytest
from sqlalchemy.engine import make_url

from app.config import Environment, Settings
from app.db import upgrade
from app.ops import setup
from tests.conftest import REPO
from tests.databases import DatabaseFactory, _admin_dsn, as_role, login_roles
from tests.ops.conftest import IDP_ISSUER, Deployment, identity_provider
from tests.server import PGW, free_port, wait_until_up
from tests.tokens import claims

KEY_FILES = ("kek/kek-v1.key", "audit-signing-key.pem", "receipt-signing-key.pem",
             "pii-hash-key")

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture
def pgw(tmp_path: Path) -> Run:
    """`pgw ARGS` in tmp_path with only the PGW_ variables given (none from the outside)."""
    def run(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
        clean = {k: v for k, v in os.environ.items() if not k.startswith("PGW_")}
        return subprocess.run([PGW, *args], cwd=tmp_path, env={**clean, **env},
                              capture_output=True, text=True, timeout=120, check=False)
    return run


def exported(stdout: str) -> dict[str, str]:
    """The variables of `export NAME=VALUE` lines; fails on any other line on stdout."""
    found = {}
    for line in stdout.splitlines():
        word, assignment = shlex.split(line)
        assert word == "export", line
        name, _, value = assignment.partition("=")
        found[name] = value
    return found


def base_env(tmp_path: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {"PGW_DATA_DIR": str(tmp_path / "data"), "PGW_POLICY_DIR": str(REPO / "policies"),
           "PGW_DATABASE_URL": database_url, **extra}
    if database_url.startswith("sqlite"):
        env.setdefault("PGW_ALLOW_SQLITE_IN_PROD", "true")
    return env


def test_init_then_check_in_dev(pgw: Run, tmp_path: Path, database_url: str) -> None:
    env = base_env(tmp_path, database_url)
    init = pgw("init", **env)
    assert init.returncode == 0, init.stderr
    environment = exported(init.stdout)
    data = tmp_path / "data"
    assert environment["PGW_ENV"] == "dev"
    assert environment["PGW_DATA_DIR"] == str(data)
    assert environment["PGW_AUDIT_SIGNING_KEY_FILE"] == str(data / "audit-signing-key.pem")
    for name in (*KEY_FILES, "dev-jwt-secret"):
        assert (data / name).stat().st_mode & 0o777 == 0o600, name
    for what in ("KEK", "audit signing key", "consent receipt signing key", "keyed-hash key",
                 "development JWT secret"):
        assert f"created {what} " in init.stderr
    for directory in (data, data / "kek"):
        assert directory.stat().st_mode & 0o777 == 0o700
    assert len((data / "kek" / "kek-v1.key").read_bytes()) == 32
    check = pgw("check", **{**env, **environment})
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "configuration ok (PGW_ENV=dev)"


def test_init_refuses_to_overwrite(pgw: Run, tmp_path: Path, database_url: str) -> None:
    env = base_env(tmp_path, database_url, PGW_ENV="prod")
    first = pgw("init", **env)
    assert first.returncode == 0, first.stderr
    data = tmp_path / "data"
    before = {name: (data / name).read_bytes() for name in KEY_FILES}
    (data / "receipt-signing-key.pem").write_bytes(b"not a key")
    second = pgw("init", **env)
    assert second.returncode == 0, second.stderr
    assert exported(second.stdout) == exported(first.stdout)
    assert "created" not in second.stderr
    assert second.stderr.count("not overwritten") == 4
    assert (data / "receipt-signing-key.pem").read_bytes() == b"not a key"
    for name in ("kek/kek-v1.key", "audit-signing-key.pem", "pii-hash-key"):
        assert (data / name).read_bytes() == before[name]
    assert list((data / "kek").iterdir()) == [data / "kek" / "kek-v1.key"]
    idp, _ = identity_provider(tmp_path)
    check = pgw("check", **{**env, **exported(first.stdout), **idp})
    assert check.returncode == 1
    assert f"PGW_RECEIPT_SIGNING_KEY_FILE: {data / 'receipt-signing-key.pem'} is not a PEM " \
           "private key" in check.stderr


@pytest.fixture
def service_url(dialect: str, database_url: str) -> Iterator[dict[str, str]]:
    """How the service connects: on PostgreSQL as a role of its own, with the sequencer's
    (granted by migrating as the owner), as production must; on SQLite the one file."""
    if dialect != "postgresql":
        yield {"PGW_DATABASE_URL": database_url}
        return
    with login_roles(database_url, "svc", "seq") as roles:
        upgrade(database_url, service_role=roles["svc"], sequencer_role=roles["seq"])
        yield {"PGW_DATABASE_URL": as_role(database_url, roles["svc"]),
               "PGW_SEQUENCER_DATABASE_URL": as_role(database_url, roles["seq"])}


def test_prod_init_check_serve(pgw: Run, tmp_path: Path, service_url: dict[str, str]) -> None:
    env = base_env(tmp_path, service_url.pop("PGW_DATABASE_URL"), PGW_ENV="prod", **service_url)
    init = pgw("init", **env)
    assert init.returncode == 0, init.stderr
    assert "prod needs your identity provider" in init.stderr
    environment = {**env, **exported(init.stdout)}
    without_issuer = pgw("check", **environment)
    assert without_issuer.returncode == 1
    assert "PGW_JWT_ISSUER must be set" in without_issuer.stderr
    idp, private_key = identity_provider(tmp_path)
    environment.update(idp)
    check = pgw("check", **environment)
    assert check.returncode == 0, check.stderr
    assert check.stdout.strip() == "configuration ok (PGW_ENV=prod)"

    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("PGW_")}
    server = subprocess.Popen([PGW, "serve", "--port", str(port)], cwd=tmp_path,
                              env={**clean, **environment}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, f"{base}/healthz")
        ready = httpx.get(f"{base}/readyz", timeout=10)
        assert ready.status_code == 200, ready.text
        officer = claims(iss=IDP_ISSUER, scope="policy:read", roles=["compliance_officer"])
        token = jwt.encode(officer, private_key, algorithm="RS256", headers={"kid": "k1"})
        policy = httpx.get(f"{base}/v1/policy", headers={"Authorization": f"Bearer {token}"})
        assert policy.status_code == 200, policy.text
        assert "purposes" in policy.json()
    finally:
        server.terminate()
        server.wait(timeout=30)
    kek = tmp_path / "data" / "kek" / "kek-v1.key"
    kek.write_bytes(bytes(range(32)))  # another key than the one the server recorded
    wrong = pgw("check", **environment)
    assert wrong.returncode == 1
    assert "  - KEK: KEK version 1 does not match the check value recorded for it" in \
        wrong.stderr


def test_check_lists_every_problem_at_once(pgw: Run, tmp_path: Path,
                                           databases: DatabaseFactory) -> None:
    unmigrated = databases.new(migrated=False)
    env = base_env(tmp_path, unmigrated, PGW_ENV="prod")
    environment = {**env, **exported(pgw("init", **env).stdout)}
    data = tmp_path / "data"
    data.chmod(0o755)
    (data / "audit-signing-key.pem").chmod(0o644)
    (data / "pii-hash-key").unlink()
    (data / "kek" / "kek-v1.key").unlink()
    environment["PGW_POLICY_DIR"] = str(tmp_path / "no-policies")
    environment["PGW_JWT_SECRET"] = "short"
    check = pgw("check", "--json", **environment)
    assert check.returncode == 1
    report = json.loads(check.stdout)
    assert report["ok"] is False
    problems = report["problems"]
    expected = [
        "PGW_JWT_ISSUER must be set",
        "PGW_JWT_SECRET must be at least 32 bytes",
        f"PGW_DATA_DIR {data} is open to others (mode 755); run chmod 700 {data}",
        f"PGW_AUDIT_SIGNING_KEY_FILE: key file {data / 'audit-signing-key.pem'} is readable "
        "by others",
        "keyed-hash key",
        f"KEK: no KEK file in {data / 'kek'}",
        "PGW_POLICY_DIR: ",
        "PGW_DATABASE_URL: ",
    ]
    assert problems[-1].endswith("run `pgw migrate`") or \
        problems[-1].endswith("create it with `pgw migrate`")
    for start in expected:
        assert sum(p.startswith(start) for p in problems) == 1, (start, problems)
    assert len(problems) == len(expected)
    assert "short" not in check.stdout  # the secret itself is never repeated
    plain = pgw("check", **environment)
    assert plain.returncode == 1
    assert f"pgw check: {len(expected)} configuration problems (PGW_ENV=prod):" in plain.stderr
    assert plain.stdout == ""


def test_unreachable_database_is_named_without_its_password(pgw: Run, tmp_path: Path,
                                                           database_url: str) -> None:
    url = "postgresql+psycopg://pgw:do-not-print-me@127.0.0.1:1/pgw"
    check = pgw("check", **base_env(tmp_path, database_url, PGW_DATABASE_URL=url))
    assert check.returncode == 1
    assert check.stderr.splitlines()[1:] == [
        "  - PGW_DATABASE_URL: the database cannot be used (database unavailable)"]
    assert "do-not-print-me" not in check.stderr + check.stdout


def test_unreachable_identity_provider_is_named(pgw: Run, tmp_path: Path,
                                                database_url: str) -> None:
    check = pgw("check", **base_env(tmp_path, database_url,
                                     PGW_JWT_JWKS_URL="http://127.0.0.1:1/jwks.json"))
    assert check.returncode == 1
    assert check.stderr.splitlines() == [
        "pgw check: 1 configuration problem (PGW_ENV=dev):",
        "  - PGW_JWT_JWKS_URL: http://127.0.0.1:1/jwks.json cannot be reached (ConnectError)"]


def test_invalid_settings_are_all_reported(pgw: Run, tmp_path: Path, database_url: str) -> None:
    check = pgw("check", **base_env(tmp_path, database_url, PGW_CIPHER="des",
                                     PGW_JWT_LEEWAY_SECONDS="-1"))
    assert check.returncode == 1
    assert check.stderr.splitlines() == [
        "pgw: 2 configuration problems:",
        "  - PGW_JWT_LEEWAY_SECONDS: Input should be greater than or equal to 0",
        "  - PGW_CIPHER must be aes-256-gcm (aes) or sm4-gcm (sm4)"]
    assert "Traceback" not in check.stderr


def test_serve_in_prod_reports_every_problem_in_one_message(pgw: Run, tmp_path: Path,
                                                            database_url: str) -> None:
    env = base_env(tmp_path, database_url, PGW_ENV="prod")
    environment = {**env, **exported(pgw("init", **env).stdout)}
    (tmp_path / "data" / "receipt-signing-key.pem").write_bytes(b"damaged")
    serve = pgw("serve", "--port", str(free_port()), **environment)
    assert serve.returncode == 2
    assert "pgw: 3 configuration problems:" in serve.stderr
    for problem in ("PGW_JWT_ISSUER", "PGW_JWT_SECRET", "PGW_RECEIPT_SIGNING_KEY_FILE"):
        assert f"  - {problem}" in serve.stderr
    assert "Traceback" not in serve.stderr


def test_token_in_prod_is_one_clear_line(pgw: Run, tmp_path: Path, database_url: str) -> None:
    token = pgw("token", "--sub", "x", **base_env(tmp_path, database_url, PGW_ENV="prod"))
    assert token.returncode == 2
    assert token.stdout == ""
    assert token.stderr.splitlines() == [
        "pgw token: development tokens are refused when PGW_ENV=prod; get a token from your "
        "identity provider"]


def test_env_provider_kek_is_printed_once(pgw: Run, tmp_path: Path, database_url: str) -> None:
    env = base_env(tmp_path, database_url, PGW_ENV="prod", PGW_KEK_PROVIDER="env")
    first = pgw("init", "--json", **env)
    assert first.returncode == 0, first.stderr
    report = json.loads(first.stdout)
    assert report["printed_secrets"] == ["PGW_KEK"]
    assert len(base64.b64decode(report["environment"]["PGW_KEK"], validate=True)) == 32
    assert not (tmp_path / "data" / "kek").exists()
    again = pgw("init", **env, PGW_KEK=report["environment"]["PGW_KEK"])
    assert "PGW_KEK" not in exported(again.stdout)
    assert "kept KEK in PGW_KEK" in again.stderr


def test_check_in_prod_refuses_a_service_role_that_could_rewrite_the_audit_log(
        deployment: Deployment, prod_settings: Callable[..., Settings]) -> None:
    d, url = deployment, deployment.url  # an owner that is no superuser: the README's
    owner, service, sequencer = (as_role(url, role) for role in (d.owner, d.svc, d.seq))

    assert setup.problems(prod_settings(database_url=service, sequencer_database_url=sequencer,
                                        service_role=d.svc)) == []
    superuser = make_url(url).username
    assert setup.problems(prod_settings(database_url=url, sequencer_database_url=sequencer)) \
        == [f"PGW_DATABASE_URL connects as {superuser!r}, a superuser, which can switch the "
            "audit log's triggers off and rewrite it; create a role for the service, run "
            "`pgw migrate` as the tables' owner with PGW_MIGRATION_DATABASE_URL set to the "
            "owner's URL and PGW_SERVICE_ROLE to the new role, then point PGW_DATABASE_URL "
            'at the new role (README "Tamper evidence against the service itself")']
    [owning] = setup.problems(prod_settings(database_url=owner))
    assert owning.startswith(
        f"PGW_DATABASE_URL connects as {d.owner!r}, the owner of audit_checkpoints, "
        "audit_entries, audit_pending, audit_tree_nodes, which can switch the audit log's "
        "triggers off")
    [sequencing_owner] = setup.problems(prod_settings(database_url=service,
                                                      sequencer_database_url=owner))
    assert sequencing_owner.startswith(
        f"PGW_SEQUENCER_DATABASE_URL connects as {d.owner!r}, the owner of ")
    assert "PGW_SEQUENCER_ROLE" in sequencing_owner
    # in development one role for everything is fine: nothing is said
    assert setup.problems(prod_settings(database_url=owner).model_copy(
        update={"env": Environment.DEV})) == []


def test_check_names_a_replication_grant_and_a_missing_sequencer_url(
        dialect: str, database_url: str, prod_settings: Callable[..., Settings]) -> None:
    if dialect != "postgresql":
        pytest.skip("database roles are a PostgreSQL feature (set PGW_TEST_DATABASE_URL)")
    with login_roles(database_url, "svc", "seq") as roles:
        upgrade(database_url, service_role=roles["svc"], sequencer_role=roles["seq"])
        service, sequencer = as_role(database_url, roles["svc"]), as_role(database_url,
                                                                            roles["seq"])
        without_sequencer = [
            f"neither PGW_SEQUENCER_ROLE nor PGW_SEQUENCER_DATABASE_URL is set, but "
            f"{roles['svc']!r} may not add to the audit log (`pgw migrate` with "
            "PGW_SEQUENCER_ROLE left that to the sequencer's role): set PGW_SEQUENCER_ROLE for "
            "`pgw serve` (it then waits for the sequencer), and give every `pgw worker` the "
            "sequencer role's URL in PGW_SEQUENCER_DATABASE_URL"]
        assert setup.problems(prod_settings(database_url=service)) == without_sequencer
        dev = prod_settings(database_url=service).model_copy(update={"env": Environment.DEV})
        assert setup.problems(dev) == without_sequencer  # it could not work there either
        # a serving process needs the sequencer's name only, not its credentials
        assert setup.problems(prod_settings(database_url=service, service_role=roles["svc"],
                                            sequencer_role=roles["seq"])) == []
        with psycopg.connect(_admin_dsn(database_url), autocommit=True) as conn:
            conn.execute(f'GRANT SET ON PARAMETER session_replication_role TO "{roles["svc"]}"')
        try:
            assert setup.problems(prod_settings(database_url=service,
                                                sequencer_database_url=sequencer)) == [
                f"PGW_DATABASE_URL connects as {roles['svc']!r}, which may SET "
                "session_replication_role and so switch the audit log's triggers off; fix: REVOKE "
                f"SET ON PARAMETER session_replication_role FROM {roles['svc']}"]
        finally:
            with psycopg.connect(_admin_dsn(database_url), autocommit=True) as conn:
                conn.execute("REVOKE SET ON PARAMETER session_replication_role "
                             f'FROM "{roles["svc"]}"')
