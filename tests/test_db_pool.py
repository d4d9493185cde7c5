"""The PostgreSQL pool checks a connection only when it was idle: one lost while idle is replaced
before use, one in steady use costs no extra round trip."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from app.db import make_engine
from tests.databases import _admin_dsn


@pytest.fixture
def pg_url(database_url: str, dialect: str) -> str:
    if dialect != "postgresql":
        pytest.skip("the pool's check is PostgreSQL's (SQLite opens files, nothing to lose)")
    return database_url


@pytest.fixture
def engines() -> Iterator[list[Engine]]:
    made: list[Engine] = []
    yield made
    for engine in made:
        engine.dispose()


def _engine(engines: list[Engine], url: str, idle: float) -> Engine:
    engine = make_engine(url, pool_size=1, max_overflow=0, ping_idle_seconds=idle)
    engines.append(engine)
    return engine


def _backend(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


def _kill(url: str, pid: int) -> None:
    with psycopg.connect(_admin_dsn(url), autocommit=True) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
    time.sleep(0.2)  # the backend is gone, its socket closed


def _count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    pings: list[int] = []
    real = engine.dialect.do_ping

    def counted(dbapi_connection: Any) -> bool:
        pings.append(1)
        return real(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


def test_a_connection_lost_while_idle_is_replaced_before_use(
        pg_url: str, engines: list[Engine]) -> None:
    engine = _engine(engines, pg_url, idle=0.1)
    first = _backend(engine)
    _kill(pg_url, first)  # as a database restart or a firewall would, while it sat in the pool
    assert _backend(engine) != first  # checked, found dead, replaced: the request never sees it


def test_without_the_idle_check_the_lost_connection_reaches_the_request(
        pg_url: str, engines: list[Engine]) -> None:
    # the control for the test above: the same loss, but the connection was idle less than the
    # threshold, so it is handed out unchecked and its first statement fails
    engine = _engine(engines, pg_url, idle=3600)
    first = _backend(engine)
    _kill(pg_url, first)
    with pytest.raises(OperationalError):
        _backend(engine)
    assert _backend(engine) != first  # the pool replaced it after that failure


def test_a_connection_in_steady_use_is_not_pinged(
        pg_url: str, engines: list[Engine], monkeypatch: pytest.MonkeyPatch) -> None:
    steady = _engine(engines, pg_url, idle=60)
    pings = _count_pings(steady, monkeypatch)
    backends = {_backend(steady) for _ in range(5)}
    assert len(backends) == 1
    assert pings == []

    always = _engine(engines, pg_url, idle=0)
    pings = _count_pings(always, monkeypatch)
    for _ in range(5):
        _backend(always)
    assert len(pings) == 4  # every checkout but the first, whose connection was just opened
