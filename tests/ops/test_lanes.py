"""Record writes and reads on threads of their own (capacity.Lane, PGW_REQUEST_THREADS): at most
so many at once, a bounded queue that waits a bounded time, waiting that does not count as using
the database, work skipped for a client that left, the queue shed when the database gives no
connection in time, and all of it on /metrics."""

from __future__ import annotations

import asyncio
import gc
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import anyio
import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session
from starlette.requests import Request

from app import capacity, deps
from app.capacity import Admission, Busy, Lane
from app.config import Settings
from app.errors import DatabaseBusy
from app.main import create_app
from tests.gateway import make_record
from tests.server import LiveServer, metric, wait_for
from tests.tokens import make_token

TOKEN = make_token(scope="records:write records:read", roles=["support_agent"])
READ = {"purpose": "customer_support"}


class Held:
    """A service function made to wait until released, counting the calls that reached it."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, module: Any, name: str):
        self.reached = threading.Semaphore(0)
        self.release = threading.Event()
        self.calls = 0
        real = getattr(module, name)

        def held(*args: Any, **kwargs: Any) -> Any:
            self.calls += 1
            self.reached.release()
            self.release.wait(timeout=30)
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, held)


def held_writes(monkeypatch: pytest.MonkeyPatch) -> Held:
    from app.records import service

    return Held(monkeypatch, service, "create")


@contextmanager
def writes_in_flight(client: httpx.Client, count: int, prefix: str = "held"
                     ) -> Iterator[list[Future[httpx.Response]]]:
    with ThreadPoolExecutor(count) as pool:
        yield [pool.submit(client.post, "/v1/records",
                           json=make_record(subject_id=f"{prefix}-{i}")) for i in range(count)]


def test_record_reads_and_writes_work_at_most_request_threads_at_once(
        make_settings: Callable[..., Settings], start_server: Callable[[FastAPI], LiveServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """PGW_REQUEST_THREADS bounds the record writes a process works on at once, and the reads;
    the others wait their turn and are all answered."""
    from app.records import reading, service

    running: Counter[str] = Counter()
    most: Counter[str] = Counter()
    lock = threading.Lock()

    def counted(kind: str, real: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            with lock:
                running[kind] += 1
                most[kind] = max(most[kind], running[kind])
            try:
                time.sleep(0.05)  # long enough for the others to pile up
                return real(*args, **kwargs)
            finally:
                with lock:
                    running[kind] -= 1
        return wrapper

    monkeypatch.setattr(service, "create", counted("write", service.create))
    monkeypatch.setattr(reading, "read_one", counted("read", reading.read_one))
    live = start_server(create_app(make_settings(request_threads=2)))
    client = live.client(TOKEN)
    with ThreadPoolExecutor(8) as pool:
        written = list(pool.map(lambda i: client.post("/v1/records", json=make_record(
            subject_id=f"threads-{i}")), range(8)))
        assert [w.status_code for w in written] == [201] * 8, written[0].text
        read = list(pool.map(lambda w: client.get(
            f"/v1/records/{w.json()['record_id']}", params=READ), written))
    assert [r.status_code for r in read] == [200] * 8
    assert most == {"write": 2, "read": 2}


def test_writes_holding_every_write_thread_do_not_hold_up_reads(
        make_settings: Callable[..., Settings], start_server: Callable[[FastAPI], LiveServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Reads have threads of their own, and a write waiting for a thread does not count as
    using the database: with every write thread held and more writes waiting than the process
    admits to the database (2 here), a read is answered at once. Both show on /metrics."""
    settings = make_settings(request_threads=1, db_pool_size=1, db_max_waiting=0)
    live = start_server(create_app(settings))
    client = live.client(TOKEN)
    record_id = client.post("/v1/records", json=make_record()).json()["record_id"]
    held = held_writes(monkeypatch)
    with writes_in_flight(client, 4) as writes:
        try:
            assert held.reached.acquire(timeout=10)  # the write thread is taken
            wait_for(lambda: metric(live, "pgw_request_queue_waiting", lane="record_writes")
                     == 3, what="three writes waiting")
            assert metric(live, "pgw_request_threads_busy", lane="record_writes") == 1
            began = time.monotonic()
            read = client.get(f"/v1/records/{record_id}", params=READ)
            assert read.status_code == 200, read.text
            assert time.monotonic() - began < 5
            assert not held.reached.acquire(timeout=0.2)  # the other writes still wait
        finally:
            held.release.set()
        assert [w.result().status_code for w in writes] == [201] * 4
    assert metric(live, "pgw_request_queue_waiting", lane="record_writes") == 0
    assert metric(live, "pgw_request_threads_busy", lane="record_writes") == 0


def test_a_full_queue_refuses_at_once_and_a_long_wait_gives_up(
        make_settings: Callable[..., Settings], start_server: Callable[[FastAPI], LiveServer],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """PGW_REQUEST_QUEUE bounds the requests waiting for a thread and PGW_REQUEST_QUEUE_SECONDS
    their wait: past either, 503 with Retry-After, and the refused write is not done."""
    live = start_server(create_app(make_settings(request_threads=1, request_queue=1,
                                                 request_queue_seconds=3)))
    client = live.client(TOKEN)
    held = held_writes(monkeypatch)
    with writes_in_flight(client, 2) as writes:
        try:
            assert held.reached.acquire(timeout=10)
            wait_for(lambda: metric(live, "pgw_request_queue_waiting", lane="record_writes")
                     == 1, what="a write waiting")
            began = time.monotonic()
            refused = client.post("/v1/records", json=make_record(subject_id="third"))
            assert time.monotonic() - began < 2  # at once, not after the wait
            assert refused.status_code == 503
            assert refused.headers["retry-after"] == "1"
            assert refused.json()["type"] == "urn:pgw:problem:busy"
            assert "1 record writes are in progress and 1 waiting" in refused.json()["detail"]
            # the one waiting, after its second; the other is held (either may be the first)
            done, _ = wait(writes, timeout=10, return_when=FIRST_COMPLETED)
        finally:
            held.release.set()
        [timed_out] = [future.result() for future in done]
        assert sorted(w.result().status_code for w in writes) == [201, 503]
    assert timed_out.status_code == 503, timed_out.text
    assert timed_out.headers["retry-after"] == "1"
    assert "no record writes thread came free within 3" in timed_out.json()["detail"]
    assert held.calls == 1
    assert metric(live, "pgw_request_queue_refused_total", lane="record_writes",
                  reason="queue_full") == 1
    assert metric(live, "pgw_request_queue_refused_total", lane="record_writes",
                  reason="timeout") == 1
    assert client.post("/v1/records", json=make_record()).status_code == 201


@pytest.mark.parametrize("kind", ["write", "read"])
def test_a_request_whose_client_leaves_while_it_waits_leaves_the_queue_undone(
        kind: str, make_settings: Callable[..., Settings],
        start_server: Callable[[FastAPI], LiveServer], monkeypatch: pytest.MonkeyPatch) -> None:
    """A client that gives up while its request waits for a thread would otherwise hold a
    place in the queue until its turn, and then get a record stored that it never heard of
    (and may write again): the request leaves the queue as the client goes, and is not done."""
    from app.records import reading

    lane = f"record_{kind}s"
    live = start_server(create_app(make_settings(request_threads=1, request_queue=1)))
    client = live.client(TOKEN)
    record_id = client.post("/v1/records", json=make_record()).json()["record_id"]
    held = held_writes(monkeypatch) if kind == "write" else Held(monkeypatch, reading,
                                                                   "read_one")

    def send(http: httpx.Client, subject: str) -> httpx.Response:
        if kind == "write":
            return http.post("/v1/records", json=make_record(subject_id=subject))
        return http.get(f"/v1/records/{record_id}", params=READ)

    with ThreadPoolExecutor(1) as pool:
        first = pool.submit(send, client, "held")
        try:
            assert held.reached.acquire(timeout=10)
            with httpx.Client(base_url=live.url, timeout=0.5,
                              headers={"Authorization": f"Bearer {TOKEN}"}) as impatient:
                with pytest.raises(httpx.ReadTimeout):
                    send(impatient, "gone")
            # gone from the queue while the thread is still held, its place free again
            wait_for(lambda: metric(live, "pgw_request_queue_refused_total", lane=lane,
                                    reason="client_gone") == 1, what="the request dropped")
            assert metric(live, "pgw_request_queue_waiting", lane=lane) == 0
        finally:
            held.release.set()
        assert first.result().status_code == (201 if kind == "write" else 200)
    assert held.calls == 1
    assert metric(live, "pgw_request_threads_busy", lane=lane) == 0
    # nothing leaked: the one thread serves the next request at once
    assert send(client, "after").status_code == (201 if kind == "write" else 200)
    assert held.calls == 2


def test_a_failing_watch_for_the_client_is_logged_and_the_request_waits_its_turn(
        caplog: pytest.LogCaptureFixture) -> None:
    lane = Lane("record reads", threads=1, queue=4, wait_seconds=5)

    async def broken() -> None:
        raise RuntimeError("receiving from the server failed")

    async def scenario() -> str:
        async with anyio.create_task_group() as group:
            group.start_soon(lane.run, lambda: time.sleep(0.2))  # holds the one thread
            await anyio.sleep(0.05)
            answer = await lane.run(lambda: "answered", until_gone=broken)
        return answer

    assert anyio.run(scenario) == "answered"
    [logged] = [r for r in caplog.records if r.name == "pgw.capacity"]
    assert "failed; it waits its turn regardless" in logged.getMessage()
    assert logged.exc_info is not None


def test_shedding_refuses_every_request_waiting_at_once_and_none_that_comes_after() -> None:
    """`Lane.shed` (called when a request found no database connection in time): those
    waiting would find none either, so they get their 503 now, not after their whole wait."""
    lane = Lane("record writes", threads=1, queue=4, wait_seconds=30)
    release = threading.Event()
    outcomes: dict[int, object] = {}

    async def send(n: int) -> None:
        try:
            outcomes[n] = await lane.run(lambda: n)
        except Busy as exc:
            outcomes[n] = exc

    async def scenario() -> float:
        async with anyio.create_task_group() as group:
            group.start_soon(lane.run, lambda: release.wait(10))  # holds the one thread
            await anyio.sleep(0.05)
            for n in range(3):
                group.start_soon(send, n)
            await anyio.sleep(0.05)
            assert lane.waiting == 3
            began = time.monotonic()
            lane.shed("no database connection came free within 1 s")
            while lane.waiting > 0:
                await anyio.sleep(0.01)
            took = time.monotonic() - began
            group.start_soon(send, 9)  # comes after the shedding: waits its turn as usual
            await anyio.sleep(0.05)
            assert lane.waiting == 1
            release.set()
        return took

    assert anyio.run(scenario) < 1
    assert outcomes[9] == 9
    for n in range(3):
        refused = outcomes[n]
        assert isinstance(refused, Busy)
        assert refused.status == 503
        assert refused.headers == {"Retry-After": "1"}
        assert str(refused) == ("no database connection came free within 1 s; the record "
                                "writes waiting in this process were refused; try again")


@pytest.mark.parametrize("raised", ["pool timeout", "audit entry's pool timeout"])
def test_a_request_without_a_connection_sheds_the_queue_and_its_turn_goes_on(
        raised: str) -> None:
    """deps.on_lane: the pool's timeout, raised as it is or (from the audit entry's commit)
    as the cause of a DatabaseBusy, sheds the lane's queue. The turn the failing request gave
    back went to the first waiter just before, which keeps it; nothing is left held."""
    lane = Lane("record writes", threads=1, queue=8, wait_seconds=30)
    runtime = SimpleNamespace(admission=Admission(limit=8), session_factory=Session)
    outcomes: dict[int, object] = {}

    def no_connection(_session: Session) -> None:
        time.sleep(0.2)  # while the others queue
        timeout = sa_exc.TimeoutError("QueuePool limit reached")
        if raised == "pool timeout":
            raise timeout
        raise DatabaseBusy("no database connection became free in time") from timeout

    async def never_gone() -> dict[str, Any]:
        await anyio.sleep_forever()
        raise AssertionError

    def request() -> Request:
        return Request({"type": "http", "app": SimpleNamespace(state=SimpleNamespace(
            runtime=runtime))}, never_gone)

    async def send(n: int, work: Callable[[Session], object]) -> None:
        try:
            outcomes[n] = await deps.on_lane(lane, request(), work)
        except Exception as exc:  # noqa: BLE001 - recorded for the assertions
            outcomes[n] = exc

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(send, 0, no_connection)
            await anyio.sleep(0.05)
            for n in (1, 2, 3):
                group.start_soon(send, n, lambda _session, n=n: n)
                await anyio.sleep(0.01)
            assert lane.waiting == 3

    anyio.run(scenario)
    assert isinstance(outcomes[0], (sa_exc.TimeoutError, DatabaseBusy))
    assert outcomes[1] == 1  # had the failing request's turn
    for n in (2, 3):
        refused = outcomes[n]
        assert isinstance(refused, Busy), refused
        assert "no database connection came free within PGW_DB_POOL_TIMEOUT_SECONDS" in str(
            refused)
    assert lane.waiting == 0
    assert lane.held == 0
    assert runtime.admission.active == 0


def test_turns_go_in_arrival_order_and_a_cancelled_waiter_gives_up_its_place() -> None:
    """Waiting requests get the one thread first come, first served; one cancelled while it
    waits (its task ends) leaves the queue and is never worked on, and nothing is left held."""
    lane = Lane("record reads", threads=1, queue=8, wait_seconds=30)
    release = threading.Event()
    order: list[int] = []

    async def scenario() -> None:
        async with anyio.create_task_group() as group:
            group.start_soon(lane.run, lambda: release.wait(10))  # holds the one thread
            await anyio.sleep(0.05)
            scopes = [anyio.CancelScope() for _ in range(4)]
            for n, scope in enumerate(scopes):
                async def send(n: int = n, scope: anyio.CancelScope = scope) -> None:
                    with scope:
                        await lane.run(lambda: order.append(n))

                group.start_soon(send)
                await anyio.sleep(0.01)
            assert lane.waiting == 4
            scopes[1].cancel()  # the second to arrive gives up
            await anyio.sleep(0.05)
            assert lane.waiting == 3
            release.set()

    anyio.run(scenario)
    assert order == [0, 2, 3]
    assert lane.waiting == 0
    assert lane.held == 0


def test_a_turn_given_to_a_waiter_cancelled_before_it_runs_goes_to_the_next() -> None:
    """A finishing thread hands its turn to the first waiter; if that waiter's task is
    cancelled in the same moment, before it runs again, the turn goes on to the next instead of
    being lost. The turn is taken and handed over here by hand, so both happen in one step of
    the event loop."""
    lane = Lane("record reads", threads=1, queue=8, wait_seconds=30)
    ran: list[str] = []

    async def scenario() -> None:
        lane._free = 0  # the one turn is held, as by a request on its thread
        cancelled = asyncio.create_task(lane.run(lambda: ran.append("cancelled")))
        await asyncio.sleep(0.01)
        after = asyncio.create_task(lane.run(lambda: ran.append("after")))
        await asyncio.sleep(0.01)
        assert lane.waiting == 2
        lane._pass_turn()  # as the holder's thread does when it ends...
        cancelled.cancel()  # ...with the first waiter cancelled before it resumes
        await asyncio.wait_for(after, 5)  # not lost with the cancelled one
        with pytest.raises(asyncio.CancelledError):
            await cancelled

    asyncio.run(scenario())
    assert ran == ["after"]
    assert lane.waiting == 0
    assert lane.held == 0


def test_a_request_cancelled_while_its_work_runs_holds_its_turn_until_the_work_ends() -> None:
    """Cancelling the request does not stop its thread; until the thread is done, nobody else
    gets the turn, so no more than `threads` requests ever work at once."""
    lane = Lane("record writes", threads=1, queue=8, wait_seconds=30)
    running = threading.Semaphore(0)
    release = threading.Event()
    at_once, most = 0, 0
    lock = threading.Lock()

    def work() -> None:
        nonlocal at_once, most
        with lock:
            at_once += 1
            most = max(most, at_once)
        running.release()
        release.wait(10)
        with lock:
            at_once -= 1

    async def scenario() -> None:
        cancelled = asyncio.create_task(lane.run(work))
        await asyncio.to_thread(running.acquire)
        cancelled.cancel()  # the caller stops waiting; its thread works on
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        assert lane.held == 1
        after = asyncio.create_task(lane.run(work))
        await asyncio.sleep(0.05)
        assert lane.waiting == 1  # not let in beside the cancelled one's thread
        release.set()
        await asyncio.wait_for(after, 5)

    asyncio.run(scenario())
    assert most == 1
    assert lane.waiting == 0
    assert lane.held == 0


class _Counted:
    """A gauge or counter that keeps its value (the lane's metrics, unobserved by default)."""

    def __init__(self) -> None:
        self.value = 0.0

    def inc(self, amount: float = 1) -> None:
        self.value += amount

    def dec(self, amount: float = 1) -> None:
        self.value -= amount


def _observed(lane: Lane) -> dict[str, _Counted]:
    seen = {"busy": _Counted(), "waiting": _Counted()}
    lane.busy_gauge, lane.waiting_gauge = seen["busy"], seen["waiting"]
    lane.refused = lambda reason: seen.setdefault(reason, _Counted())
    return seen


def test_an_anyio_scope_cancelled_before_the_work_starts_keeps_it_from_running() -> None:
    """Under anyio (a cancel scope, as a request's), a cancellation that is there when the turn
    is taken, at once or in the same step as a finishing thread hands it over, stops the work
    from starting, and the turn goes on."""
    ran: list[str] = []

    async def at_once(lane: Lane) -> None:
        with anyio.CancelScope() as scope:
            scope.cancel()
            await lane.run(lambda: ran.append("at once"))

    async def at_the_hand_over(lane: Lane) -> None:
        lane._free = 0  # the one turn is held, as by a request on its thread
        scope = anyio.CancelScope()

        async def waiter() -> None:
            with scope:
                await lane.run(lambda: ran.append("handed over"))

        async with anyio.create_task_group() as group:
            group.start_soon(waiter)
            await anyio.sleep(0.02)
            lane._pass_turn()
            scope.cancel()

    for scenario in (at_once, at_the_hand_over):
        lane = Lane("record writes", threads=1, queue=4, wait_seconds=30)
        seen = _observed(lane)
        anyio.run(scenario, lane)
        assert lane.held == 0
        assert seen["busy"].value == 0
        assert seen["waiting"].value == 0
    assert ran == []


def test_work_that_fails_in_any_way_gives_its_turn_back_and_leaves_nothing_unread() -> None:
    """StopIteration (which an asyncio future cannot hold: the request would never finish) is
    a RuntimeError; an error raised after its caller was cancelled is read, not left for the
    event loop to log as never retrieved; either way the turn is given back."""
    lane = Lane("record writes", threads=1, queue=4, wait_seconds=30)
    seen = _observed(lane)
    loop_errors: list[dict[str, Any]] = []
    release = threading.Event()

    def fails_later() -> None:
        release.wait(10)
        raise ValueError("the write failed")

    async def scenario() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda _loop, c: loop_errors.append(c))
        with pytest.raises(RuntimeError, match="StopIteration"):
            await asyncio.wait_for(lane.run(lambda: next(iter(()))), 5)
        cancelled = asyncio.create_task(lane.run(fails_later))
        await asyncio.sleep(0.05)
        cancelled.cancel()
        with pytest.raises(asyncio.CancelledError):
            await cancelled
        release.set()
        assert await asyncio.wait_for(lane.run(lambda: "next"), 5) == "next"
        del cancelled
        gc.collect()  # an unread exception is reported when its future is collected

    asyncio.run(scenario())
    assert loop_errors == []
    assert lane.held == 0
    assert seen["busy"].value == 0


def test_no_queue_refuses_at_once_and_a_closed_lane_says_busy() -> None:
    lane = Lane("record reads", threads=1, queue=0, wait_seconds=30)
    seen = _observed(lane)
    release = threading.Event()

    async def scenario() -> None:
        holder = asyncio.create_task(lane.run(lambda: release.wait(10)))
        await asyncio.sleep(0.05)
        with pytest.raises(Busy, match="1 record reads are in progress and 0 waiting"):
            await lane.run(lambda: None)
        release.set()
        await holder
        lane.close()  # the runtime is closing: a request that comes now is told to retry
        with pytest.raises(Busy, match="cannot take the request now"):
            await lane.run(lambda: None)

    asyncio.run(scenario())
    assert seen["queue_full"].value == 1
    assert lane.held == 0
    assert seen["busy"].value == 0


def test_a_deadline_or_shed_in_the_step_a_turn_is_handed_over_loses_no_turn() -> None:
    """A turn handed to a waiter whose deadline fires, or whose queue is shed, in the same
    step: whichever comes first wins, and the turn is neither lost nor given twice."""
    for first in ("hand-over", "refusal"):
        for refusal in ("timeout", "shed"):
            lane = Lane("record reads", threads=1, queue=4, wait_seconds=30)
            seen = _observed(lane)
            outcomes: list[object] = []

            async def scenario(first: str = first, refusal: str = refusal,
                               lane: Lane = lane, outcomes: list[object] = outcomes) -> None:
                lane._free = 0

                async def waiter() -> None:
                    try:
                        outcomes.append(await lane.run(lambda: "worked"))
                    except Busy as exc:
                        outcomes.append(exc)

                task = asyncio.create_task(waiter())
                await asyncio.sleep(0.02)
                [turn] = lane._turns

                def refuse() -> None:
                    if refusal == "shed":
                        lane.shed("stuck")
                    else:
                        capacity._refuse(turn, "timeout")

                if first == "hand-over":
                    lane._pass_turn()
                    refuse()
                else:
                    refuse()
                    lane._pass_turn()
                await asyncio.wait_for(task, 5)

            asyncio.run(scenario())
            if first == "hand-over":
                assert outcomes == ["worked"]
                assert lane.held == 0
            else:
                [refused] = outcomes
                assert isinstance(refused, Busy)
                assert seen["timeout" if refusal == "timeout" else "database_busy"].value == 1
                assert lane.held == 0  # the turn went back, nobody waiting for it
            assert lane.waiting == 0
            assert seen["waiting"].value == 0
            assert seen["busy"].value == 0
