"""How much work a serving process takes on at once: sessions (Admission) and the threads the
busiest endpoints run on (Lane). Past either limit a request is refused at once with a 503 and
Retry-After, instead of queueing without bound behind a slow database or a busy CPU."""

from __future__ import annotations

import asyncio
import contextvars
import logging
import threading
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Generic, Protocol, TypeVar, cast

import anyio.lowlevel

from app.errors import DatabaseBusy, GatewayError, ServiceUnavailable

logger = logging.getLogger("pgw.capacity")

T = TypeVar("T")

# Why a Lane refused a request (the `reason` of pgw_request_queue_refused_total): the queue was
# full, the turn did not come in time, the requests waiting were shed when the database handed
# out no connection in time, or the client left while it waited.
REFUSALS = ("queue_full", "timeout", "database_busy", "client_gone")


class Admission:
    """How many requests may hold a database session at once in this process: the pool's
    connections plus a bounded number waiting for one. The rest are refused at once with a 503
    instead of queueing without limit behind a slow or stopped database."""

    def __init__(self, limit: int):
        self.limit, self.active = limit, 0
        self._lock = threading.Lock()

    def enter(self) -> None:
        with self._lock:
            if self.active >= self.limit:
                raise DatabaseBusy(f"{self.active} requests are already using or waiting for "
                                   "the database; try again", headers={"Retry-After": "1"})
            self.active += 1

    def leave(self) -> None:
        with self._lock:
            self.active -= 1


class Busy(ServiceUnavailable):
    type, title = "busy", "Busy"


class ClientClosedRequest(GatewayError):
    """The client went away while its request waited for a thread: the work is not done (nginx
    logs the same case as 499). Nobody receives the response; it shows in logs and metrics."""

    status, type, title = 499, "client-closed-request", "Client closed request"
    answered = False  # not in the catalogue of problems: no client ever receives it


class Gauge(Protocol):
    def inc(self, amount: float = 1) -> None: ...
    def dec(self, amount: float = 1) -> None: ...


class _Counter(Protocol):
    def inc(self, amount: float = 1) -> None: ...


class _Unobserved:
    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass


class _Refused(Exception):
    """Why a request waiting for its turn will not get one (one of REFUSALS)."""

    def __init__(self, reason: str, why: str = ""):
        super().__init__(reason)
        self.reason, self.why = reason, why


def _refuse(turn: asyncio.Future[None], reason: str, why: str = "") -> None:
    if not turn.done():
        turn.set_exception(_Refused(reason, why))


class _Job(Generic[T]):
    """A request's work as a lane thread runs it: in a copy of the caller's context, and not at
    all if it was abandoned before a thread took it. A StopIteration leaves as a RuntimeError:
    an asyncio future cannot hold one, and the request would never finish."""

    def __init__(self, work: Callable[[], T]):
        self.work, self.abandoned = work, False
        self.context = contextvars.copy_context()

    def __call__(self) -> T:
        if self.abandoned:
            return cast(T, None)  # nobody waits for it
        try:
            return self.context.run(self.work)
        except StopIteration as exc:
            raise RuntimeError("a request's work raised StopIteration") from exc


class Lane:
    """At most `threads` requests of one kind (record writes, record reads) work at once in a
    process, each on a thread of the lane's own; up to `queue` more wait their turn on the event
    loop, where waiting costs nothing, for at most `wait_seconds`. A request past the queue, or
    one that waited its whole time, gets a 503 with Retry-After; one whose client went away
    while it waited is not worked on at all.

    A request waiting here holds no database connection and is not counted as using the
    database: only once it has its thread does it enter the process's Admission. When a request
    that had its thread could not get a database connection in time, the database is stuck or
    overloaded and those waiting would meet the same: `shed` refuses them all at once.

    Built on the event loop's own futures, timers and executor, not anyio's limiters, task groups
    and cancel scopes: with more requests than threads, those cost the event loop about 180 µs a
    request more (bench/lane_cost.py), at the concurrency where its CPU is scarcest. A waiting
    request is one future in a FIFO, one timer for its deadline and, when it can tell that its
    client left, one task watching for that; a finishing thread hands its turn straight to the
    first request still waiting. Only the asyncio event loop is supported (uvicorn's)."""

    def __init__(self, name: str, *, threads: int, queue: int, wait_seconds: float):
        self.name, self.queue, self.wait_seconds = name, queue, wait_seconds
        self.threads = threads
        self.waiting = 0
        self._free = threads  # turns nobody holds: none while anyone waits
        self._turns: deque[asyncio.Future[None]] = deque()  # the requests waiting, oldest first
        # as many threads as turns, so a request given its turn never waits for a thread;
        # started when first needed
        self._executor = ThreadPoolExecutor(threads, thread_name_prefix="pgw-" + "-".join(
            name.split()))
        self.busy_gauge: Gauge = _Unobserved()
        self.waiting_gauge: Gauge = _Unobserved()
        self.refused: Callable[[str], _Counter] = lambda reason: _Unobserved()

    @property
    def held(self) -> int:
        """Turns taken: requests working on a thread, or given their turn and about to."""
        return self.threads - self._free

    async def run(self, work: Callable[[], T], *,
                  until_gone: Callable[[], Awaitable[None]] | None = None) -> T:
        """`work` on one of the lane's threads once it is this request's turn. Refused with
        Busy (503) when the queue is full, the turn did not come within `wait_seconds`, or the
        queue was shed while it waited; with ClientClosedRequest, its place in the queue given
        up at once, when `until_gone` (which returns once the client has gone away) returns
        while it waits. The turn is held until `work` returns, even if the caller is cancelled
        before then."""
        if self._free and not self._turns:  # fair: nobody passes those waiting
            self._free -= 1
        else:
            await self._wait_for_turn(until_gone)
        job = _Job(work)
        try:
            # a cancellation that came with the turn: anyio does not cancel a task again once
            # the future it awaits is done, but waits for its next checkpoint; this is it
            await anyio.lowlevel.checkpoint_if_cancelled()
            self.busy_gauge.inc()
        except BaseException:
            self._pass_turn()
            raise
        try:
            done = asyncio.get_running_loop().run_in_executor(self._executor, job)
            done.add_done_callback(self._thread_done)
        except BaseException as exc:
            job.abandoned = True  # perhaps queued, but no thread started for it: never to run
            self._thread_done(None)
            if isinstance(exc, RuntimeError):  # shut down, or no thread could be started
                raise Busy(f"this process cannot take the request now ({exc}); try again",
                           headers={"Retry-After": "1"}) from None
            raise
        return await asyncio.shield(done)  # a cancelled caller leaves the thread its turn

    def _thread_done(self, done: asyncio.Future[Any] | None) -> None:
        if done is not None and not done.cancelled():
            done.exception()  # read: the caller, if cancelled, never will (shield drops it)
        try:
            self.busy_gauge.dec()
        finally:
            self._pass_turn()

    def _pass_turn(self) -> None:
        """A turn is given back: to the first request still waiting, or free."""
        while self._turns:
            turn = self._turns.popleft()
            if not turn.done():  # one already refused is still queued until it leaves
                turn.set_result(None)
                return
        self._free += 1

    def shed(self, why: str) -> None:
        """Refuse every request now waiting for a turn (503, Retry-After), saying `why`; those
        arriving later wait as usual. Called on the event loop."""
        for turn in self._turns:
            _refuse(turn, "database_busy", why)

    def close(self) -> None:
        """Let the threads end once idle (the runtime is closing)."""
        self._executor.shutdown(wait=False)

    async def _wait_for_turn(self, until_gone: Callable[[], Awaitable[None]] | None) -> None:
        if self.waiting >= self.queue:
            self.refused("queue_full").inc()
            raise Busy(f"{self.threads} {self.name} are in progress and {self.waiting} waiting "
                       "in this process; try again", headers={"Retry-After": "1"})
        loop = asyncio.get_running_loop()
        turn: asyncio.Future[None] = loop.create_future()
        began = time.monotonic()
        self._turns.append(turn)
        self.waiting += 1
        deadline = loop.call_later(self.wait_seconds, _refuse, turn, "timeout")
        watch = loop.create_task(self._watch(until_gone, turn)) if until_gone else None
        try:
            self.waiting_gauge.inc()
            await turn
        except _Refused as refused:
            self._leave(turn)
            self.refused(refused.reason).inc()
            if refused.reason == "client_gone":
                raise ClientClosedRequest("the client closed the connection while the request "
                                          "waited its turn") from None
            if refused.reason == "database_busy":
                raise Busy(f"{refused.why}; the {self.name} waiting in this process were "
                           "refused; try again", headers={"Retry-After": "1"}) from None
            raise Busy(f"no {self.name} thread came free within "
                       f"{time.monotonic() - began:.1f} s in this process; try again",
                       headers={"Retry-After": "1"}) from None
        except BaseException:  # cancelled while waiting
            if turn.done() and not turn.cancelled() and turn.exception() is None:
                self._pass_turn()  # given its turn, it cannot take it: the next one does
            else:
                self._leave(turn)
            raise
        finally:
            deadline.cancel()
            if watch is not None:
                watch.cancel()
            self.waiting -= 1
            self.waiting_gauge.dec()

    def _leave(self, turn: asyncio.Future[None]) -> None:
        try:
            self._turns.remove(turn)
        except ValueError:  # passed over by a finishing thread already
            pass

    async def _watch(self, until_gone: Callable[[], Awaitable[None]],
                     turn: asyncio.Future[None]) -> None:
        try:
            await until_gone()
        except Exception:  # not known gone: the wait goes on, bounded as ever
            logger.warning("watching for a %s request's client to leave failed; it waits its "
                           "turn regardless", self.name, exc_info=True)
            return
        _refuse(turn, "client_gone")
