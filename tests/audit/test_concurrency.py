"""Several processes appending at once, each also running a sequencer, still build one unbroken
chain and one tree with an exact count."""

from __future__ import annotations

import multiprocessing
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import text

from app.audit import log_check, sequencer
from app.audit import service as audit
from app.auth.guard import Caller
from app.config import Settings
from app.runtime import Runtime, open_runtime
from tests.server import LiveServer
from tests.tokens import make_token

PROCESSES = 4
EACH = 40


def _append(settings: Settings, worker: int) -> None:
    runtime = open_runtime(settings)
    try:
        for i in range(EACH):
            with runtime.session_factory() as session:
                audit.record(session, caller=Caller(sub=f"worker-{worker}"),
                             action="record.written", details={"i": i})
                session.commit()
            if i % 7 == worker:  # the processes' sequencers race each other and the writers
                sequencer.step(runtime, limit=5)
    finally:
        runtime.close()


def test_concurrent_appends_form_one_chain(settings: Settings, runtime: Runtime) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_append, args=(settings, w)) for w in range(PROCESSES)]
    for process in workers:
        process.start()
    for process in workers:
        process.join(timeout=300)
        assert process.exitcode == 0
    with runtime.session_factory() as session:
        audit.catch_up(session)
        session.commit()
        result = log_check.verify_log(session, signer=runtime.audit_signer)
    assert result.ok, result.reason
    assert result.entries == PROCESSES * EACH
    with runtime.engine.connect() as conn:
        seqs = [row[0] for row in conn.execute(text("SELECT seq FROM audit_entries ORDER BY seq"))]
        actors = conn.execute(text("SELECT count(DISTINCT actor) FROM audit_entries")).scalar()
    assert seqs == list(range(1, PROCESSES * EACH + 1))
    assert actors == PROCESSES


def test_concurrent_requests_never_see_database_is_locked(live: LiveServer) -> None:
    token = make_token()

    def call(i: int) -> int:
        with live.client(token) as client:
            path = "/v1/audit/checkpoints" if i % 2 else "/v1/audit"
            return client.post(path).status_code if i % 2 else client.get(path).status_code

    with ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(call, range(80)))
    assert set(statuses) <= {200, 201, 204}, statuses
    result = live.client(token).get("/v1/audit/verify").json()
    assert result["ok"] is True
    # A checkpoint request that found the log still empty answered 204 and audited nothing.
    assert result["entries"] == sum(1 for status in statuses if status != 204)
