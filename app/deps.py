"""Request dependencies shared by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.capacity import Lane
from app.config import Settings
from app.errors import GatewayError, ServiceUnavailable
from app.keys.keyring import Keyring
from app.keys.signing import Signer
from app.policy.loader import Policy

if TYPE_CHECKING:
    from app.runtime import Runtime

T = TypeVar("T")


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


def _commit_and_close(session: Session) -> None:
    session.commit()
    session.close()


def commit_here(session: Session) -> None:
    """Commit on the thread that did the request's work, at its end: the hot endpoints call it
    so that `get_session` has nothing left to send to a thread of its own (one trip less). A
    failed commit raises from the endpoint, before any response, as it would from there."""
    session.commit()


def _settled(session: Session) -> bool:
    """Nothing left to commit: no transaction, no unflushed change, no queued audit entry."""
    return not (session.in_transaction() or session.new or session.dirty or session.deleted
                or session.info.get(audit.PENDING_KEY))


def _rollback(session: Session) -> None:
    try:
        session.rollback()
    except Exception:  # noqa: S110 - the connection is gone; the error being raised says why
        pass


_ADMITTED = "pgw.admitted"


def _admit(runtime: Runtime, session: Session) -> None:
    if session.info.get(_ADMITTED):  # once per session, or it would leave once too few
        return
    runtime.admission.enter()
    session.info[_ADMITTED] = True


async def _until_disconnected(request: Request) -> None:
    """Return once the client has closed the connection. Only for a request whose body is read
    already (or that has none): it takes the messages that follow."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


def _sessions(*, admit_now: bool) -> Callable[[Request], AsyncIterator[Session]]:
    # one generator per kind, made here rather than one wrapping the other: a second layer
    # would cost every request another context manager
    async def dependency(request: Request) -> AsyncIterator[Session]:
        runtime = request.app.state.runtime
        session: Session = runtime.session_factory()
        if admit_now:
            _admit(runtime, session)
        closed = False
        try:
            yield session
            if _settled(session):  # committed by the endpoint (commit_here): holds no connection
                session.close()
            else:
                await _finish(_commit_and_close, session)  # one trip to a thread, not two
            closed = True
        except GatewayError as exc:
            await _finish(_keep_denials, session, exc)
            raise
        except BaseException:
            await _finish(_rollback, session)
            raise
        finally:
            if not closed:
                await _finish(session.close)
            if session.info.pop(_ADMITTED, False):
                runtime.admission.leave()

    return dependency


get_session = _sessions(admit_now=True)
get_session.__doc__ = """One session per request, committed once when the endpoint returns.

A client error (4xx) rolls the request's changes back but keeps its audited denials, which are
written on their own; if even that fails, the client gets a 5xx."""
get_lane_session = _sessions(admit_now=False)
get_lane_session.__doc__ = """The same for an endpoint that works on a Lane (`on_lane`): the
request enters the process's admission only once it has its thread, so that waiting for one does
not count as using the database."""


async def on_lane(lane: Lane, request: Request, session: Session, work: Callable[[], T]) -> T:
    """`work` on one of the lane's threads, the session admitted once it has one; not at all
    when the client went away while it waited (capacity.Lane)."""
    runtime = request.app.state.runtime
    return await lane.run(work, admit=lambda: _admit(runtime, session),
                          until_gone=lambda: _until_disconnected(request))


# scope="function": the commit runs before the response is sent, so a failed commit (an audit
# entry that cannot be written) turns into a 5xx instead of a success already on the wire.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]
LaneSessionDep = Annotated[Session, Depends(get_lane_session, scope="function")]


# The dependencies below only read the application's state: `async def` runs them on the event
# loop, where a plain `def` would cost each request a trip to a worker thread per dependency.
async def get_runtime(request: Request) -> Runtime:
    """The process's runtime: settings, policy, keys and session factories loaded at start-up."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings  # the runtime's, and there before it
    return settings


async def get_policy(request: Request) -> Policy:
    policy: Policy = request.app.state.runtime.policy
    return policy


async def get_keyring(request: Request) -> Keyring:
    """The keyring, or a 503 while the service is sealed."""
    keyring: Keyring = request.app.state.runtime.require_keyring()
    return keyring


def audit_signer(runtime: Runtime) -> Signer:
    """The audit checkpoint signer, or a 503 without one."""
    signer = runtime.audit_signer
    if signer is None:
        raise ServiceUnavailable("the audit signing key is not available")
    return signer


async def get_audit_signer(request: Request) -> Signer:
    return audit_signer(request.app.state.runtime)


def receipt_signer(runtime: Runtime) -> Signer:
    """The consent receipt signer, or a 503 without one."""
    signer = runtime.receipt_signer
    if signer is None:
        raise ServiceUnavailable("the consent receipt signing key is not available")
    return signer


async def get_receipt_signer(request: Request) -> Signer:
    return receipt_signer(request.app.state.runtime)


if TYPE_CHECKING:
    RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
else:  # FastAPI does not need the class itself
    RuntimeDep = Annotated[Any, Depends(get_runtime)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
PolicyDep = Annotated[Policy, Depends(get_policy)]
KeyringDep = Annotated[Keyring, Depends(get_keyring)]
SignerDep = Annotated[Signer, Depends(get_audit_signer)]
ReceiptSignerDep = Annotated[Signer, Depends(get_receipt_signer)]
