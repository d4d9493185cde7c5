"""The service under its own limits: a paused database, a database that is down, a full disk.
Each time: /healthz answers at once, /readyz answers 503 with the reason within its time limit,
requests get 503 with Retry-After (never a 500, never a dropped connection), and everything
recovers within seconds of the fault ending."""

from __future__ import annotations

import errno
import os
import sqlite3
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from sqlalchemy.engine import make_url

from app.config import Settings
from app.db import upgrade
from app.main import create_app
from tests.faults import FaultyLink
from tests.gateway import make_record
from tests.server import LiveServer, metric
from tests.tokens import make_token

WRITER = make_token(sub="svc-crm", scope="records:write records:read", roles=["support_agent"])
# Small limits, so that the test reaches them with few requests.
LIMITS = {"db_pool_size": 2, "db_max_waiting": 4, "db_pool_timeout_seconds": 1,
          "readiness_timeout_seconds": 1, "sqlite_busy_timeout_seconds": 2,
          "db_connect_timeout_seconds": 1}


def timed(client: httpx.Client, method: str, path: str, **kwargs: object
          ) -> tuple[httpx.Response, float]:
    started = time.monotonic()
    response = client.request(method, path, **kwargs)  # type: ignore[arg-type]
    return response, time.monotonic() - started


def assert_retryable(response: httpx.Response) -> None:
    assert response.status_code == 503, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert int(response.headers["retry-after"]) >= 1
    assert response.headers.get("connection") != "close"  # the connection stays usable


def recovered(client: httpx.Client, within: float = 10) -> None:
    deadline = time.monotonic() + within
    while client.get("/readyz").status_code != 200:
        assert time.monotonic() < deadline, client.get("/readyz").text
        time.sleep(0.2)
    written = client.post("/v1/records", json=make_record(subject_id="after-the-fault"))
    assert written.status_code == 201, written.text


def in_flight(base: str, count: int) -> tuple[list[httpx.Response], list[threading.Thread]]:
    """`count` writes sent at once, each on its own connection."""
    responses: list[httpx.Response] = []

    def send(n: int) -> None:
        with httpx.Client(base_url=base, timeout=120,
                          headers={"Authorization": f"Bearer {WRITER}"}) as client:
            responses.append(client.post("/v1/records", json=make_record(subject_id=f"f-{n}")))

    threads = [threading.Thread(target=send, args=(n,)) for n in range(count)]
    for thread in threads:
        thread.start()
    return responses, threads


@contextmanager
def paused_database(settings: Settings, dialect: str
                    ) -> Iterator[tuple[Settings, Callable[[], None], Callable[[], None]]]:
    """Settings reaching the database through a fault, and pause/resume for it. PostgreSQL:
    a proxy that stops relaying. SQLite: another process holds the write lock."""
    if dialect == "postgresql":
        url = make_url(settings.sqlalchemy_url)
        link = FaultyLink((url.host or "127.0.0.1", url.port or 5432))
        try:
            proxied = url.set(host="127.0.0.1", port=link.port)
            yield (settings.model_copy(update={"database_url": proxied.render_as_string(
                hide_password=False)}), link.pause, link.resume)
        finally:
            link.close()
        return
    holder = sqlite3.connect(make_url(settings.sqlalchemy_url).database or "",
                             isolation_level=None, check_same_thread=False)
    try:
        yield (settings, lambda: None if holder.execute("BEGIN IMMEDIATE") else None,
               lambda: None if holder.execute("ROLLBACK") else None)
    finally:
        holder.close()


def test_a_paused_database_wedges_nothing(make_settings: Callable[..., Settings],
                                          start_server: Callable[..., LiveServer],
                                          dialect: str) -> None:
    with paused_database(make_settings(**LIMITS), dialect) as (settings, pause, resume):
        server = start_server(create_app(settings))
        client = server.client(WRITER)
        assert client.post("/v1/records", json=make_record()).status_code == 201
        pause()
        try:
            responses, threads = in_flight(server.url, 80)
            time.sleep(1)
            health, took = timed(client, "GET", "/healthz")
            assert health.status_code == 200
            assert took < 1
            ready, took = timed(client, "GET", "/readyz")
            assert ready.status_code == 503
            assert ready.json()["reasons"]
            assert took < 3
            refused, took = timed(client, "POST", "/v1/records", json=make_record())
            assert_retryable(refused)
            # at worst a wait for the pool, then a connection attempt that times out (1 s each
            # here; 1.0-2.0 s measured on a quiet machine), with room for a loaded CI machine
            assert took < settings.db_pool_timeout_seconds + \
                settings.db_connect_timeout_seconds + 2
            assert client.get("/healthz").status_code == 200  # on the same connection
        finally:
            resume()
        for thread in threads:
            thread.join(timeout=60)
        statuses = Counter(r.status_code for r in responses)
        assert set(statuses) <= {201, 503}, statuses
        assert statuses[503] >= 60  # beyond the pool and its queue: refused, not queued
        for response in responses:
            if response.status_code == 503:
                assert_retryable(response)
        # those waiting for a thread were refused once a write found no connection in time
        assert metric(server, "pgw_request_queue_refused_total", lane="record_writes",
                      reason="database_busy") >= 1
        recovered(client)


def test_a_database_that_is_down_answers_503_and_recovers(
        make_settings: Callable[..., Settings], start_server: Callable[..., LiveServer],
        dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("an embedded SQLite database cannot be out of reach")
    settings = make_settings(**LIMITS)
    url = make_url(settings.sqlalchemy_url)
    link = FaultyLink((url.host or "127.0.0.1", url.port or 5432))
    try:
        proxied = url.set(host="127.0.0.1", port=link.port).render_as_string(hide_password=False)
        server = start_server(create_app(settings.model_copy(update={"database_url": proxied})))
        client = server.client(WRITER)
        assert client.post("/v1/records", json=make_record()).status_code == 201
        link.cut()
        for _ in range(3):
            down = client.post("/v1/records", json=make_record())
            assert_retryable(down)
            assert down.json()["type"] == "urn:pgw:problem:database-unavailable"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert any("database unreachable" in reason for reason in ready.json()["reasons"])
        link.restore()
        recovered(client)
    finally:
        link.close()


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    mount = tmp_path / "small-disk"
    mount.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=24m", "tmpfs", str(mount)],
                          capture_output=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a small tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], check=False)


def fill(directory: Path) -> Path:
    """Write zeros until the disk is full; the file that holds them."""
    filler = directory / "filler"
    descriptor = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(descriptor, b"\0" * 65536)
            except OSError as exc:
                if exc.errno == errno.ENOSPC:
                    return filler
                raise
    finally:
        os.close(descriptor)


def test_a_full_disk_answers_503_and_recovers(make_settings: Callable[..., Settings],
                                              start_server: Callable[..., LiveServer],
                                              small_disk: Path) -> None:
    """The embedded database on a disk that fills up (on PostgreSQL the server's disk is the
    operator's; its 'disk full' error maps to the same answer)."""
    database = small_disk / "pgw.sqlite3"
    upgrade(f"sqlite:///{database}")
    settings = make_settings(database_url=f"sqlite:///{database}", data_dir=small_disk / "data",
                             min_free_disk_mb=1, **LIMITS)
    server = start_server(create_app(settings))
    client = server.client(WRITER)
    assert client.post("/v1/records", json=make_record()).status_code == 201
    filler = fill(small_disk)
    try:
        full = client.post("/v1/records", json=make_record(
            record_type="support_ticket", purpose="customer_support",
            data={"subject": "refund", "body": "my order never came " * 900}))
        assert_retryable(full)
        assert full.json()["type"] == "urn:pgw:problem:storage-full"
        ready = client.get("/readyz")
        assert ready.status_code == 503
        assert any("disk almost full" in reason for reason in ready.json()["reasons"])
    finally:
        filler.unlink()
    recovered(client)
