"""Request dependencies shared by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from functools import partial
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import anyio
import anyio.to_thread
from fastapi import Depends, Request
from sqlalchemy import exc as sa_exc
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


def _settled(session: Session) -> bool:
    """Nothing left to commit: no transaction, no unflushed change, no queued audit entry."""
    return not (session.in_transaction() or session.new or session.dirty or session.deleted
                or session.info.get(audit.PENDING_KEY))


def _rollback(session: Session) -> None:
    try:
        session.rollback()
    except Exception:  # noqa: S110 - the connection is gone; the error being raised says why
        pass


async def _until_disconnected(request: Request) -> None:
    """Return once the client has closed the connection. Only for a request whose body is read
    already (or that has none): it takes the messages that follow."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def get_session(request: Request) -> AsyncIterator[Session]:
    """One session per request, committed once when the endpoint returns.

    A client error (4xx) rolls the request's changes back but keeps its audited denials, which
    are written on their own; if even that fails, the client gets a 5xx."""
    runtime = request.app.state.runtime
    session: Session = runtime.session_factory()  # holds no connection until it is used
    runtime.admission.enter()
    closed = False
    try:
        yield session
        if _settled(session):  # committed by the endpoint already: holds no connection
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
        runtime.admission.leave()


def in_session(runtime: Runtime, work: Callable[[Session], T]) -> T:
    """`work` with a session of its own, all on the calling thread: admitted, committed once
    `work` returns (before the response is built, so a failed commit is the request's error),
    denials kept as `get_session` keeps them, and closed. For the lanes' endpoints, which
    would otherwise pay FastAPI's generator dependency and a thread trip or two around it."""
    runtime.admission.enter()
    try:
        session: Session = runtime.session_factory()
        try:
            result = work(session)
            session.commit()
        except GatewayError as exc:
            _keep_denials(session, exc)
            raise
        except BaseException:
            _rollback(session)
            raise
        finally:
            session.close()
        return result
    finally:
        runtime.admission.leave()


async def on_lane(lane: Lane, request: Request, work: Callable[[Session], T]) -> T:
    """`work` in a session of its own (`in_session`) on one of the lane's threads; not at all
    when the client went away while it waited (capacity.Lane). Waiting for a thread does not
    count as using the database: the session is admitted once the request has its thread.
    When no database connection came free in time, the requests waiting behind it would fare
    no better: they are refused at once (`Lane.shed`), not after their whole wait."""
    runtime = request.app.state.runtime
    try:
        return await lane.run(partial(in_session, runtime, work),
                              until_gone=lambda: _until_disconnected(request))
    except Exception as exc:
        if isinstance(exc, sa_exc.TimeoutError) or isinstance(exc.__cause__, sa_exc.TimeoutError):
            lane.shed("no database connection came free within PGW_DB_POOL_TIMEOUT_SECONDS")
        raise


# scope="function": the commit runs before the response is sent, so a failed commit (an audit
# entry that cannot be written) turns into a 5xx instead of a success already on the wire.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]


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
