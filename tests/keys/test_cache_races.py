"""A key destroyed by another process while this one reads: the reads that follow the
destruction's commit never decrypt with it, whatever the server had cached or was loading.

The destruction is made to commit at an exact point of a read, from a hook on the server's
statements (the server runs in this process; `runtime` stands for another process with a
keyring of its own on the same database)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event

from app.auth.guard import Caller
from app.keys import shred
from app.runtime import Runtime
from tests.gateway import Clients, read, write
from tests.server import LiveServer

ANOTHER_PROCESS = Caller.system("test-other-process")


@pytest.fixture(autouse=True)
def _postgres(dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("on SQLite a read holds the write lock: no destruction commits during it")


def _destroy(runtime: Runtime, subject_id: str) -> None:
    assert runtime.keyring is not None
    with runtime.session_factory() as session:
        shred.destroy_subject_keys(session, runtime.keyring, caller=ANOTHER_PROCESS,
                                   subject_id=subject_id)
        session.commit()


@contextmanager
def _after_first(live: LiveServer, matches: Callable[[str], bool],
                 action: Callable[[], None]) -> Iterator[list[str]]:
    """Run `action` once, right after the server's first statement that `matches`."""
    engine = live.app.state.runtime.engine
    fired: list[str] = []

    def after(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if not fired and matches(statement):
            fired.append(statement[:80])
            action()

    event.listen(engine, "after_cursor_execute", after)
    try:
        yield fired
    finally:
        event.remove(engine, "after_cursor_execute", after)


def test_a_destruction_committed_before_the_reads_next_statement_is_seen(
        clients: Clients, runtime: Runtime, live: LiveServer) -> None:
    """The record's statement also reads the key state, used as is only if the key is used
    before any other statement. Here the caller holds a grant, so the read looks it up after
    the record, and the destruction commits in between: the state must be read again."""
    record_id = write(clients())["record_id"]
    agent = clients("support_agent", sub="agent-7")
    filed = agent.post("/v1/access-requests", json={
        "record_id": record_id, "fields": ["email"], "purpose": "customer_support",
        "justification": "Customer disputes a delivery", "duration": "PT1H"}).json()
    supervisor = clients(sub="supervisor-2", scope="access:approve")
    assert supervisor.post(f"/v1/access-requests/{filed['id']}/approve",
                           json={}).status_code == 200
    assert read(agent, record_id, "customer_support")["data"]["email"] == \
        "Zhang.Wei@Example.cn"  # the server has the key cached now
    with _after_first(live, lambda s: "pgw_grants_exist" in s,
                      lambda: _destroy(runtime, "cust-1")) as fired:
        seen = read(agent, record_id, "customer_support")
    assert fired
    assert "email" not in seen["data"]
    assert seen["access"]["email"]["reason"].startswith("subject-erased")


def test_a_key_loaded_as_its_destruction_commits_is_not_cached(
        clients: Clients, runtime: Runtime, live: LiveServer) -> None:
    """A read loads the key row (still active); the destruction commits; another request of
    the server sees the new shred epoch and drops the cache; only then does the first read
    finish. The key it loaded must not enter the cache, or every later read would decrypt
    with it until its time ran out."""
    first = write(clients())["record_id"]  # cust-1
    other = write(clients(), subject_id="cust-2")["record_id"]
    officer = clients("compliance_officer", sub="officer")
    read(officer, other, "account_management")
    keyring = live.app.state.runtime.keyring
    keyring.cache.evict("cust-1")  # not cached: as after its time ran out, or an eviction
    concurrent: list[str] = []

    def destroy_then_read_another() -> None:
        _destroy(runtime, "cust-1")
        concurrent.append(read(officer, other, "account_management")["data"]["email"])

    with _after_first(live, lambda s: "FROM subject_keys" in s and " FOR " not in s,
                      destroy_then_read_another) as fired:
        read(officer, first, "account_management")
    assert fired
    assert concurrent == ["Zhang.Wei@Example.cn"]  # cust-2 is untouched
    later = read(officer, first, "account_management")
    assert "email" not in later["data"]
    assert later["access"]["email"]["reason"].startswith("subject-erased")
