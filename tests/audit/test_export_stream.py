"""The export streams page by page: a client that stops reading holds no database connection."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine, select, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import QueuePool

from app.audit import export, sequencer, verifier
from app.audit import service as audit
from app.audit.models import AuditCheckpoint, AuditEntry
from app.audit.verifier import Verification
from app.auth.guard import Caller
from app.config import Settings
from app.main import create_app
from app.runtime import Runtime
from tests.audit.conftest import write_entries
from tests.server import LiveServer
from tests.tokens import make_token

# Small socket buffers on both ends, so a stalled client stops the server after ~100 KB and a
# log of this size (about 1 MB exported) cannot be sent ahead into the buffers.
BUFFER = 16 * 1024
ENTRIES = 2500


def append_entries(runtime: Runtime, count: int) -> None:
    """Append `count` entries in one transaction (fast; the chain is the same as one by one)."""
    with runtime.session_factory() as session:
        for i in range(count):
            audit.record(session, caller=Caller(sub="svc-crm", roles=("agent",),
                                                request_id=f"req-{i}"),
                         action="record.read", subject_id=f"cust-{i % 97}", purpose="support",
                         details={"fields": ["email", "phone"], "n": i})
        session.commit()


def single_query_export(runtime: Runtime, *, size: int, head: str, key_id: str) -> str:
    """The export as it was made before paging: one session, one query per kind of line."""
    with runtime.read_session_factory() as session:
        checkpoints = session.scalars(select(AuditCheckpoint).where(
            AuditCheckpoint.size <= size).order_by(AuditCheckpoint.size))
        entries = session.scalars(select(AuditEntry).where(
            AuditEntry.seq <= size).order_by(AuditEntry.seq))
        return "".join([
            export.header_line(size=size, head=head, key_id=key_id),
            *(export.checkpoint_line(audit.checkpoint_dict(c)) for c in checkpoints),
            *(export.entry_line(audit.entry_dict(e)) for e in entries),
        ])


def prepared(runtime: Runtime) -> tuple[int, str, str]:
    """Commit an export's checkpoint and audit entry, as the endpoint does: (size, head, key)."""
    signer = runtime.audit_signer
    assert signer is not None
    while (step := sequencer.step(runtime, limit=4)) and step.added == 4:
        pass  # the sequencer's batches of 4 each cross a multiple of 4: a checkpoint each
    with runtime.transaction() as session:
        size, head = export.prepare_export(session, caller=Caller(sub="auditor"))
    return size, head, signer.key_id


def verify(text_: str, runtime: Runtime) -> Verification:
    assert runtime.audit_signer is not None
    return verifier.verify_export(text_.splitlines(keepends=True), runtime.audit_signer.public_key)


def break_the_log(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("ALTER TABLE audit_entries RENAME TO audit_entries_gone"))


@pytest.fixture
def settings(make_settings: Callable[..., Settings]) -> Settings:
    # A checkpoint every 4 entries: many checkpoints, spread over several pages.
    return make_settings(audit_checkpoint_every=4)


@pytest.mark.parametrize("page_size", [1, 3, 7, 50])
def test_paged_export_equals_single_query_export(runtime: Runtime, page_size: int) -> None:
    write_entries(runtime, 29)
    size, head, key_id = prepared(runtime)
    chunks = list(export.export_chunks(runtime.read_session_factory, size=size, head_hash=head,
                                      key_id=key_id, page_size=page_size))
    paged = "".join(chunks)
    assert paged == single_query_export(runtime, size=size, head=head, key_id=key_id)
    assert all(chunk.endswith("\n") for chunk in chunks)  # every chunk is whole lines
    result = verify(paged, runtime)
    assert result.ok, result.reason
    assert (result.entries, result.checkpoints) == (size, 8)
    assert json.loads(paged.splitlines()[-1])["seq"] == size == 29


def test_empty_log_exports_its_header(runtime: Runtime) -> None:
    chunks = list(export.export_chunks(runtime.read_session_factory, size=0,
                                      head_hash="0" * 64, key_id="k", page_size=3))
    assert [json.loads(line)["type"] for line in "".join(chunks).splitlines()] == ["header"]


def test_no_connection_is_held_between_pages(runtime: Runtime) -> None:
    write_entries(runtime, 40)
    size, head, key_id = prepared(runtime)
    pool = runtime.engine.pool
    assert isinstance(pool, QueuePool)
    stream = export.export_chunks(runtime.read_session_factory, size=size, head_hash=head,
                                 key_id=key_id, page_size=5)
    chunks = []
    for chunk in stream:  # each chunk is where a slow client would keep the stream waiting
        assert pool.checkedout() == 0
        chunks.append(chunk)
    # header with checkpoints 1-5, checkpoints 6-10, 40 entries in pages of 5
    assert len(chunks) == 2 + 8
    assert verify("".join(chunks), runtime).ok


def test_database_failure_ends_the_stream(runtime: Runtime,
                                          caplog: pytest.LogCaptureFixture) -> None:
    write_entries(runtime, 40)
    size, head, key_id = prepared(runtime)
    stream = export.export_chunks(runtime.read_session_factory, size=size, head_hash=head,
                                 key_id=key_id, page_size=5)
    received = next(stream) + next(stream) + next(stream)  # all checkpoints, entries 1-5
    break_the_log(runtime.engine)
    with caplog.at_level(logging.ERROR, logger="pgw.audit"), \
            pytest.raises(SQLAlchemyError):
        next(stream)
    assert "audit export of 40 entries stopped after entry 5" in caplog.text
    result = verify(received, runtime)
    assert not result.ok
    assert result.reason == "log truncated: a signed checkpoint covers 40 entries, only 5 " \
                            "are present"


@pytest.fixture
def tight_live(settings: Settings) -> Iterator[tuple[LiveServer, FastAPI]]:
    """The gateway under uvicorn with small send buffers (accepted sockets inherit them)."""
    app = create_app(settings)
    server = LiveServer(app)
    server.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, BUFFER)
    server.start()
    yield server, app
    server.stop()


def drain(chunks: Iterator[bytes], *, into: bytearray) -> None:
    for chunk in chunks:
        into += chunk


def start_export(port: int, token: str) -> socket.socket:
    """Ask for an export, read up to the header line, then stop reading."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, BUFFER)
    sock.settimeout(20)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET /v1/audit/export HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                 f"Authorization: Bearer {token}\r\n\r\n".encode())
    received = b""
    while b'"type":"header"' not in received:
        data = sock.recv(512)
        assert data, received
        received += data
    assert received.startswith(b"HTTP/1.1 200 "), received[:200]
    return sock


def test_stalled_exports_hold_no_connections(runtime: Runtime,
                                             tight_live: tuple[LiveServer, FastAPI]) -> None:
    live, app = tight_live
    engine = app.state.runtime.engine
    connections = engine.pool.size() + engine.pool._max_overflow
    stalled_count = connections + 5  # more clients that stop reading than there are connections
    append_entries(runtime, ENTRIES)
    token = make_token()
    with ThreadPoolExecutor(max_workers=stalled_count) as pool:
        stalled = list(pool.map(lambda _: start_export(live.port, token), range(stalled_count)))
    try:
        # The streams run on until their send buffers are full, then wait holding nothing.
        deadline = time.monotonic() + 5
        while engine.pool.checkedout() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert engine.pool.checkedout() == 0

        with httpx.Client(base_url=live.url, timeout=5) as anonymous:
            assert anonymous.get("/healthz").json() == {"status": "ok"}
        # More requests that need a connection than the pool has, all at once: each answers.
        with live.client(token) as client, ThreadPoolExecutor(max_workers=connections) as pool:
            client.timeout = httpx.Timeout(10)
            reads = list(pool.map(lambda _: client.get("/v1/audit", params={"limit": 1}),
                                  range(connections)))
            assert [r.status_code for r in reads] == [200] * connections
            assert reads[0].json()["items"][0]["seq"] == 1

            # A client that reads gets a whole, verifiable export meanwhile.
            complete = client.get("/v1/audit/export")
        assert complete.status_code == 200
        result = verify(complete.text, runtime)
        assert result.ok, result.reason
        assert result.entries == json.loads(complete.text.splitlines()[0])["entries"] \
            > ENTRIES + stalled_count
    finally:
        for sock in stalled:
            sock.close()
        wait_until_idle(live)


def wait_until_idle(live: LiveServer) -> None:
    """Until the server has wound up the closed connections' requests (and logged them)."""
    state = live.server.server_state
    deadline = time.monotonic() + 10
    while (state.connections or state.tasks) and time.monotonic() < deadline:
        time.sleep(0.05)


def test_database_failure_mid_stream_aborts_the_transfer(
        runtime: Runtime, tight_live: tuple[LiveServer, FastAPI],
        caplog: pytest.LogCaptureFixture) -> None:
    live, _ = tight_live
    append_entries(runtime, ENTRIES)
    transport = httpx.HTTPTransport(socket_options=[(socket.SOL_SOCKET, socket.SO_RCVBUF,
                                                     BUFFER)])
    received = bytearray()
    with caplog.at_level(logging.ERROR, logger="pgw.audit"), \
            httpx.Client(base_url=live.url, transport=transport, timeout=10,
                         headers={"Authorization": f"Bearer {make_token()}"}) as client, \
            client.stream("GET", "/v1/audit/export") as response:
        assert response.status_code == 200
        chunks = response.iter_raw()
        received += next(chunks)
        time.sleep(0.3)  # the stream stops on a full send buffer, a page or two in
        break_the_log(runtime.engine)
        with pytest.raises(httpx.RemoteProtocolError):  # not a complete response: no last chunk
            drain(chunks, into=received)
    assert f"audit export of {ENTRIES} entries stopped after entry" in caplog.text
    assert "database error" in caplog.text
    lines = received.decode().splitlines(keepends=True)
    assert json.loads(lines[0])["entries"] == ENTRIES  # the bulk append signed its head
    assert len(lines) < ENTRIES
    result = verify("".join(lines), runtime)
    assert not result.ok
    assert str(result.reason).startswith("log truncated")
