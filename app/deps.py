"""Request dependencies shared by every router."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Any

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.errors import DatabaseBusy, GatewayError


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


# Commits and rollbacks run on threads of their own, never on the request threads: when every
# request thread waits for a connection, the sessions holding connections can still commit and
# hand them back. A session reaching this point holds its connection already.
_FINISH = anyio.CapacityLimiter(64)


async def _finish(function: Callable[..., Any], *args: Any) -> Any:
    with anyio.CancelScope(shield=True):
        return await anyio.to_thread.run_sync(function, *args, limiter=_FINISH)


def _keep_denials(session: Session, exc: GatewayError) -> None:
    kept = audit.take_unsuccessful(session) if exc.status < 500 else []
    session.rollback()
    if kept:
        audit.requeue(session, kept)
        session.commit()


def _rollback(session: Session) -> None:
    try:
        session.rollback()
    except Exception:  # noqa: S110 - the connection is gone; the error being raised says why
        pass


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request, committed once when the endpoint returns.

    A client error (4xx) rolls the request's changes back but keeps its audited denials, which
    are written on their own; if even that fails, the client gets a 5xx.
    """
    runtime = request.app.state.runtime
    runtime.admission.enter()
    session: Session = runtime.session_factory()
    try:
        yield session
        await _finish(session.commit)
    except GatewayError as exc:
        await _finish(_keep_denials, session, exc)
        raise
    except BaseException:
        await _finish(_rollback, session)
        raise
    finally:
        await _finish(session.close)
        runtime.admission.leave()


# scope="function": the commit runs before the response is sent, so a failed commit (an audit
# entry that cannot be written) turns into a 5xx instead of a success already on the wire.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
