"""A receiver that takes its time holds no transaction, no lock and no connection of the
database, and delays other jobs by at most the delivery timeout."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlalchemy import text

from app.jobs import queue, worker
from app.runtime import Runtime
from tests.webhooks.conftest import Network, Receiver, deliver, last_error, publish

Receivers = Callable[..., Receiver]
# seconds: what "at once" means on a shared test machine running two test processes (a stalled
# receiver holds its delivery until the test ends, so waiting behind it would take far longer)
PROMPT = 3.0


@pytest.fixture
def admin(live: object, clients: Callable[..., httpx.Client]) -> httpx.Client:
    return clients("compliance_officer", sub="ops-admin", scope="dsr:manage audit:read")


def _register(admin: httpx.Client, url: str) -> None:
    registered = admin.post("/v1/webhooks", json={"url": url, "events": ["subject.erased"]})
    assert registered.status_code == 201, registered.text


def _timed(call: Callable[[], httpx.Response]) -> tuple[float, int]:
    start = time.monotonic()
    status = call().status_code
    return time.monotonic() - start, status


def _open_transactions(runtime: Runtime) -> list[str]:
    """PostgreSQL sessions of this test's database that sit inside a transaction."""
    with runtime.engine.connect() as connection:
        return list(connection.execute(text(
            "SELECT state FROM pg_stat_activity WHERE datname = current_database() "
            "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'")).scalars())


def test_requests_go_on_while_a_receiver_takes_its_time(
        admin: httpx.Client, runtime: Runtime, network: Network, receivers: Receivers,
        dialect: str) -> None:
    slow = receivers("stall")
    _register(admin, slow.url)
    publish(runtime)
    threading.Timer(4, slow.release.set).start()  # the old code would hold its lock this long
    outcome: list[str | None] = []
    delivering = threading.Thread(target=lambda: outcome.append(deliver(runtime)))
    delivering.start()
    assert slow.arrived.wait(10), "the delivery did not reach the receiver"

    open_transactions = _open_transactions(runtime) if dialect == "postgresql" else []
    write = _timed(lambda: admin.post("/v1/webhooks", json={
        "url": "https://hooks.example.cn/other", "events": ["subject.rectified"]}))
    read = _timed(lambda: admin.get("/v1/webhooks"))
    audit = _timed(lambda: admin.get("/v1/audit", params={"action": "webhook.registered"}))
    assert not slow.release.is_set(), "the receiver answered before the checks ended"
    slow.release.set()
    delivering.join(15)

    assert (write[1], read[1], audit[1]) == (201, 200, 200)
    assert max(write[0], read[0], audit[0]) < PROMPT, (write, read, audit)
    assert open_transactions == []
    assert outcome == ["done"]


def test_a_receiver_that_never_answers_costs_one_timeout_then_the_next_job_runs(
        admin: httpx.Client, runtime: Runtime, network: Network,
        receivers: Receivers) -> None:
    runtime.settings = runtime.settings.model_copy(update={"webhook_timeout_seconds": 1})
    slow, healthy = receivers("stall"), receivers()
    _register(admin, slow.url)
    _register(admin, healthy.url)
    publish(runtime)

    start = time.monotonic()
    outcomes = sorted(str(deliver(runtime)) for _ in range(2))
    assert outcomes == ["done", "retry"]
    assert len(healthy.requests) == 1
    assert time.monotonic() - start < 3
    assert slow.arrived.is_set()


def test_a_receiver_that_answers_a_byte_at_a_time_is_cut_off_at_the_timeout(
        admin: httpx.Client, runtime: Runtime, network: Network,
        receivers: Receivers) -> None:
    """Socket timeouts bound each read; the delivery timeout bounds the whole attempt."""
    runtime.settings = runtime.settings.model_copy(update={"webhook_timeout_seconds": 1})
    dribbling = receivers("dribble")
    _register(admin, dribbling.url)
    publish(runtime)
    start = time.monotonic()
    assert deliver(runtime) == "retry"
    assert time.monotonic() - start < 2.5
    assert "did not answer within 1 s" in last_error(runtime)


def test_a_slow_name_lookup_is_cut_off_at_the_timeout(
        admin: httpx.Client, runtime: Runtime, network: Network,
        receivers: Receivers) -> None:
    runtime.settings = runtime.settings.model_copy(update={"webhook_timeout_seconds": 1})
    receiver = receivers()
    network.names["hooks.example.cn"] = [["127.0.0.1"]]
    network.lookup_seconds = 4
    _register(admin, f"http://hooks.example.cn:{receiver.port}/hooks")
    publish(runtime)
    start = time.monotonic()
    assert deliver(runtime) == "retry"
    assert time.monotonic() - start < 2.5
    assert "could not be resolved within 1 s" in last_error(runtime)
    assert receiver.requests == []


def test_a_running_worker_runs_other_jobs_while_a_delivery_waits(
        admin: httpx.Client, runtime: Runtime, network: Network, receivers: Receivers,
        monkeypatch: pytest.MonkeyPatch) -> None:
    ran = threading.Event()
    monkeypatch.setitem(queue.REGISTRY.handlers, "test.other", lambda *_: ran.set())
    runtime.settings = runtime.settings.model_copy(update={"worker_poll_seconds": 0.05})
    slow = receivers("stall")
    _register(admin, slow.url)
    publish(runtime)
    with _worker_stalled_on(runtime, slow):
        start = time.monotonic()
        with runtime.transaction() as session:
            queue.enqueue(session, "test.other")
        assert ran.wait(5)
        assert time.monotonic() - start < PROMPT


def test_a_stalling_receiver_delays_no_other_subscriber(
        admin: httpx.Client, runtime: Runtime, network: Network, receivers: Receivers) -> None:
    runtime.settings = runtime.settings.model_copy(update={"worker_poll_seconds": 0.05})
    slow, healthy = receivers("stall"), receivers()
    _register(admin, slow.url)  # first, so its delivery is claimed first
    _register(admin, healthy.url)
    publish(runtime)
    with _worker_stalled_on(runtime, slow):
        start = time.monotonic()
        assert healthy.arrived.wait(5), "the other subscriber waited behind the stalled one"
        assert time.monotonic() - start < PROMPT


@contextmanager
def _worker_stalled_on(runtime: Runtime, slow: Receiver) -> Iterator[None]:
    """A running worker whose delivery to `slow` has arrived and is held there for the block;
    then the receiver answers and the worker stops."""
    thread, stop = worker.start_thread(runtime)
    try:
        assert slow.arrived.wait(10), "the delivery did not reach the receiver"
        yield
        assert not slow.release.is_set()
    finally:
        stop.set()
        slow.release.set()
        thread.join(15)
    assert not thread.is_alive()
