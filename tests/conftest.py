from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI

from app.config import Settings
from app.main import create_app
from app.runtime import Runtime, open_runtime
from tests.databases import DatabaseFactory, postgres_url
from tests.server import LiveServer
from tests.tokens import TEST_ISSUER, TEST_SECRET

# Fixtures of the records API (clients with roles, an admin with notices registered).
pytest_plugins = ["tests.gateway"]

REPO = Path(__file__).resolve().parent.parent


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("CI") and os.environ.get("PGW_TEST_DATABASE_URL") and postgres_url():
        import psycopg

        from tests.databases import _admin_dsn

        with psycopg.connect(_admin_dsn(postgres_url() or ""), connect_timeout=5):
            pass  # CI must fail, not skip, when PostgreSQL cannot be reached


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a PostgreSQL run, skip the tests that never ask for a database (`databases` is behind
    every database fixture, and nothing else reads PGW_TEST_DATABASE_URL): they would run
    exactly as they did on the SQLite run of the same suite. A test that wants PostgreSQL
    without that fixture says so with `postgres_only`."""
    if not postgres_url():
        return
    same_on_sqlite = pytest.mark.skip(reason="uses no database: its SQLite run covers it")
    for item in items:
        if ("databases" not in getattr(item, "fixturenames", ())
                and item.get_closest_marker("postgres_only") is None):
            item.add_marker(same_on_sqlite)


@pytest.fixture(scope="session")
def databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DatabaseFactory]:
    factory = DatabaseFactory(tmp_path_factory.mktemp("databases"))
    yield factory
    factory.drop_all()


@pytest.fixture
def database_url(databases: DatabaseFactory) -> str:
    return databases.new()


@pytest.fixture
def dialect(databases: DatabaseFactory) -> str:
    return databases.dialect


@pytest.fixture
def make_settings(tmp_path: Path, database_url: str) -> Callable[..., Settings]:
    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "env": "dev", "data_dir": tmp_path / "data", "database_url": database_url,
            "policy_dir": REPO / "policies", "jwt_secret": TEST_SECRET,
            "jwt_issuer": TEST_ISSUER, "worker_in_serve": False,
        }
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    return make_settings()


@pytest.fixture
def start_server() -> Iterator[Callable[[FastAPI], LiveServer]]:
    servers: list[LiveServer] = []

    def start(app: FastAPI) -> LiveServer:
        server = LiveServer(app).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def live(settings: Settings, start_server: Callable[[FastAPI], LiveServer]) -> LiveServer:
    """The gateway on its own database, served by uvicorn on a loopback port."""
    return start_server(create_app(settings))


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    """The same wiring the service uses, for tests that work below HTTP."""
    rt = open_runtime(settings)
    yield rt
    rt.close()
