"""Request dependencies shared by every router."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.errors import GatewayError


def get_session(request: Request) -> Iterator[Session]:
    """One session per request, committed once when the endpoint returns.

    A client error (4xx) rolls the request's changes back but keeps its audited denials, which
    are written on their own; if even that fails, the client gets a 5xx.
    """
    session: Session = request.app.state.runtime.session_factory()
    try:
        yield session
        session.commit()
    except GatewayError as exc:
        kept = audit.take_unsuccessful(session) if exc.status < 500 else []
        session.rollback()
        if kept:
            audit.requeue(session, kept)
            session.commit()
        raise
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


# scope="function": the commit runs before the response is sent, so a failed commit (an audit
# entry that cannot be written) turns into a 5xx instead of a success already on the wire.
SessionDep = Annotated[Session, Depends(get_session, scope="function")]

