"""compose.yaml and the image: their structure (no Docker engine is needed), and the very
commands its services run, as real processes, ending in an erasure request carried out by the
worker process and by nothing else."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.cli import build_parser
from app.config import Settings
from tests.databases import DatabaseFactory
from tests.server import PGW, free_port, wait_until_up
from tests.test_cli import cli_env
from tests.tokens import make_token

REPO = Path(__file__).resolve().parents[2]
PGW_SERVICES = ("init", "migrate", "gateway", "worker")
DONE = {"condition": "service_completed_successfully"}
HEALTHY = {"condition": "service_healthy"}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return dict(yaml.safe_load((REPO / "compose.yaml").read_text()))


def command(compose: dict[str, Any], service: str) -> list[str]:
    return [str(part) for part in compose["services"][service]["command"]]


def test_compose_runs_postgres_migrations_a_gateway_and_a_worker(
        compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"postgres", *PGW_SERVICES}
    postgres = services["postgres"]
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    assert services["migrate"]["depends_on"] == {"init": DONE, "postgres": HEALTHY}
    for name in ("gateway", "worker"):
        assert services[name]["depends_on"] == {"migrate": DONE, "postgres": HEALTHY}
        assert services[name]["restart"] == "unless-stopped"
    for name in ("init", "migrate"):
        assert services[name]["restart"] == "no"  # one-shot steps
    # the image's health check asks :8000, which only the gateway serves
    for name in ("init", "migrate", "worker"):
        assert services[name]["healthcheck"] == {"disable": True}
    assert "healthcheck" not in services["gateway"]  # the Dockerfile's


def test_every_service_runs_a_real_pgw_command_on_one_configuration(
        compose: dict[str, Any]) -> None:
    services = compose["services"]
    parser = build_parser()
    parsed = {name: parser.parse_args(command(compose, name)) for name in PGW_SERVICES}
    assert {name: args.command for name, args in parsed.items()} == {
        "init": "init", "migrate": "migrate", "gateway": "serve", "worker": "worker"}
    assert parsed["gateway"].host == "0.0.0.0"  # noqa: S104 - inside its container
    assert parsed["gateway"].migrate is False  # the migrate step did it, once
    assert parsed["worker"].until_idle is False
    assert services["gateway"]["ports"] == [f"127.0.0.1:8000:{parsed['gateway'].port}"]

    settings = set(Settings.model_fields)
    first = services["init"]
    environment = first["environment"]
    for name in PGW_SERVICES:
        service = services[name]
        # one image, one environment and one key volume for every pgw process; only the
        # migrate step is given the owner's URL, and only the worker the sequencer's
        assert service["image"] == first["image"]
        own = {"migrate": "PGW_MIGRATION_DATABASE_URL",
               "worker": "PGW_SEQUENCER_DATABASE_URL"}.get(name)
        extra = {own: service["environment"].get(own)} if own else {}
        assert service["environment"] == {**environment, **extra}
        assert service["volumes"] == ["pgw-data:/var/lib/pgw"]
    assert environment["PGW_ENV"] == "prod"
    assert environment["PGW_DATA_DIR"] == "/var/lib/pgw"
    for variable in environment:  # every variable names a real setting (no silent typo)
        assert variable.removeprefix("PGW_").lower() in settings, variable


def login(url: str) -> str:
    """The role a compose database URL logs in as."""
    assert url.startswith("postgresql+psycopg://"), url
    assert "@postgres:5432/pgw" in url, url
    return url.removeprefix("postgresql+psycopg://").partition(":")[0]


def test_compose_connects_each_process_as_its_own_role(compose: dict[str, Any]) -> None:
    services = compose["services"]
    environment = services["gateway"]["environment"]
    migrate = services["migrate"]["environment"]
    worker = services["worker"]["environment"]
    # only the worker sequences: the gateway knows the sequencer's name, not its credentials
    assert "PGW_SEQUENCER_DATABASE_URL" not in environment
    assert environment["PGW_SEQUENCER_ROLE"] == worker["PGW_SEQUENCER_ROLE"]
    # the service's and the sequencer's roles are the ones `pgw migrate` grants; the owner is
    # neither, and only the migrate step knows its URL
    assert login(environment["PGW_DATABASE_URL"]) == environment["PGW_SERVICE_ROLE"]
    assert login(worker["PGW_SEQUENCER_DATABASE_URL"]) == environment["PGW_SEQUENCER_ROLE"]
    owner = login(migrate["PGW_MIGRATION_DATABASE_URL"])
    assert owner not in (environment["PGW_SERVICE_ROLE"], environment["PGW_SEQUENCER_ROLE"],
                         services["postgres"]["environment"]["POSTGRES_USER"])  # no superuser
    # the database's first start creates the three roles, none a superuser
    [mount] = [v for v in services["postgres"]["volumes"] if "docker-entrypoint-initdb.d" in v]
    script = (REPO / mount.split(":")[0]).read_text()
    for role in (owner, environment["PGW_SERVICE_ROLE"], environment["PGW_SEQUENCER_ROLE"]):
        assert f"CREATE ROLE {role} LOGIN PASSWORD" in script, role
    assert f"OWNER TO {owner};" in script
    assert "SUPERUSER" not in script


def test_the_image_runs_any_pgw_command_and_serves_by_default() -> None:
    dockerfile = (REPO / "Dockerfile").read_text().splitlines()
    [entrypoint] = [line for line in dockerfile if line.startswith("ENTRYPOINT")]
    [cmd] = [line for line in dockerfile if line.startswith("CMD")]
    assert json.loads(entrypoint.removeprefix("ENTRYPOINT")) == ["pgw"]
    default = build_parser().parse_args(json.loads(cmd.removeprefix("CMD")))
    assert (default.command, default.host, default.port) == ("serve", "0.0.0.0", 8000)  # noqa: S104


def on_loopback(argv: list[str], port: int) -> list[str]:
    """The gateway's command with only its address changed (a test listens on loopback)."""
    argv = list(argv)
    argv[argv.index("--host") + 1] = "127.0.0.1"
    argv[argv.index("--port") + 1] = str(port)
    return argv


@pytest.fixture
def unmigrated(make_settings: Callable[..., Settings], databases: DatabaseFactory) -> Settings:
    return make_settings(database_url=databases.new(migrated=False))


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for process in started:
        process.terminate()
    for process in started:
        process.wait(timeout=30)


def test_the_compose_commands_carry_out_an_erasure_request(
        compose: dict[str, Any], unmigrated: Settings,
        processes: list[subprocess.Popen[bytes]]) -> None:
    # the in-process worker is off, as in production: only `pgw worker` can run the job
    env = cli_env(unmigrated, PGW_WORKER_IN_SERVE="false", PGW_WORKER_POLL_SECONDS="0.2",
                  PGW_WORKER_STALE_SECONDS="5")
    for step in ("init", "migrate"):
        done = subprocess.run([PGW, *command(compose, step)], env=env, capture_output=True,
                              text=True, timeout=180, check=False)
        assert done.returncode == 0, f"{step}: {done.stderr[-2000:]}"

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    processes.append(subprocess.Popen([PGW, *on_loopback(command(compose, "gateway"), port)],
                                      env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.STDOUT))
    wait_until_up(processes[0], f"{base}/readyz")
    crm = httpx.Client(base_url=base, timeout=30, headers={"Authorization": "Bearer " + make_token(
        sub="svc-crm", scope="records:write records:read dsr:submit dsr:verify dsr:manage",
        roles=["compliance_officer"])})
    written = crm.post("/v1/records", json={
        "subject_id": "cust-77", "purpose": "account_management",
        "record_type": "customer_profile",
        "data": {"name": "Zhang Wei", "email": "zhang.wei@example.cn"}})
    assert written.status_code == 201, written.text
    submitted = crm.post("/v1/dsr", json={
        "subject_id": "cust-77", "type": "erasure", "jurisdiction": "GDPR",
        "verification": {"method": "logged_in_session"}})
    assert submitted.status_code == 202, submitted.text
    dsr_id = submitted.json()["id"]

    time.sleep(1)  # without a worker nothing happens, and the gateway says so
    assert crm.get(f"/v1/dsr/{dsr_id}").json()["status"] == "received"
    ready = httpx.get(f"{base}/readyz").json()
    assert ready["status"] == "degraded", ready
    assert ready["workers"]["queued_without_worker"] == 1

    processes.append(subprocess.Popen([PGW, *command(compose, "worker")], env=env,
                                      stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    deadline = time.monotonic() + 120
    while (state := crm.get(f"/v1/dsr/{dsr_id}").json())["status"] != "completed":
        assert processes[1].poll() is None, "the worker exited"
        assert time.monotonic() < deadline, state
        time.sleep(0.3)
    assert state["result"]["records_deleted"] == 1
    assert crm.get(f"/v1/records/{written.json()['record_id']}",
                   params={"purpose": "account_management"}).status_code == 404
    # liveness is a heartbeat every PGW_WORKER_STALE_SECONDS / 6: a busy machine may take a
    # beat or two to show the worker that has just done the work
    deadline = time.monotonic() + 15
    while (ready := httpx.get(f"{base}/readyz").json())["workers"]["alive"] != 1:
        assert time.monotonic() < deadline, ready
        time.sleep(0.3)
    assert ready["status"] == "ready", ready
    metrics = httpx.get(f"{base}/metrics").text
    assert "pgw_workers_alive 1" in metrics
    assert "pgw_jobs_queued_without_worker 0" in metrics
