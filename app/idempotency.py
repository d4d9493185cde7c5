"""`Idempotency-Key` for POSTs: the same key and body give the same response and one effect;
the same key with another body is refused (422).

The key is claimed by inserting its row in the request's own transaction: a concurrent request
with the same key waits for that transaction (PostgreSQL's unique index, SQLite's write lock)
and then replays its response.
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Integer, String
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.clock import utcnow
from app.db import Base, UTCDateTime
from app.errors import Conflict, Invalid

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    caller: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    route: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


def request_hash(route: str, body: Any) -> str:
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{route}\x00{canonical}".encode()).hexdigest()


def claim(session: Session, *, caller: str, key: str, route: str,
          body_hash: str) -> IdempotencyKey:
    """Claim `key` for this request, or return the earlier request's record to replay."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise Invalid(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters", field=HEADER)
    existing = session.get(IdempotencyKey, (caller, key))
    if existing is None:
        record = IdempotencyKey(caller=caller, key=key, route=route, request_hash=body_hash,
                                created_at=utcnow())
        try:
            with session.begin_nested():
                session.add(record)
        except IntegrityError:  # another request claimed it first and has committed
            existing = session.get(IdempotencyKey, (caller, key), populate_existing=True)
        else:
            return record
    assert existing is not None  # noqa: S101 - the insert failed because it exists
    if existing.request_hash != body_hash or existing.route != route:
        raise Invalid(f"this {HEADER} was used with a different request", field=HEADER)
    if existing.response is None:
        raise Conflict(f"a request with this {HEADER} is still being processed")
    return existing


def remember(record: IdempotencyKey, status_code: int, response: dict[str, Any]) -> None:
    record.status_code, record.response = status_code, response


def begin(session: Session, *, caller: str, key: str | None, route: str,
          body: Any) -> IdempotencyKey | None:
    """Claim the key for this request (None without a key). A claim whose `response` is set is
    a replay: answer with it and do nothing else."""
    if key is None:
        return None
    return claim(session, caller=caller, key=key, route=route,
                 body_hash=request_hash(route, body))
