"""`Idempotency-Key` for POSTs: the same key and body give the same response and one effect;
the same key with another body is refused (422).

The key is claimed by inserting its row in the request's own transaction: a concurrent request
with the same key waits for that transaction (PostgreSQL's unique index, SQLite's write lock)
and then replays its response.

A stored response is a copy of what the request returned, so one that carries personal data
(a record's storage view) names its subject and is sealed under the subject's key: shredding
the key makes it unreadable, and erasure purges it besides, leaving a marker so that replaying
the key answers 410 instead of writing the record again. Every entry expires after
`PGW_IDEMPOTENCY_TTL_HOURS`; a replay is audited like any other read of stored data.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import weakref
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from fastapi import Response
from sqlalchemy import JSON, Integer, String, Text, delete, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from app.audit import service as audit
from app.auth.guard import Caller
from app.clock import utcnow
from app.config import Settings
from app.db import Base, UTCDateTime
from app.errors import Conflict, Invalid
from app.keys.errors import SubjectErased
from app.keys.fields import decrypt_field, encrypt_field
from app.keys.keyring import Keyring

HEADER = "Idempotency-Key"
MAX_KEY_LENGTH = 255
SEALED_FIELD = "idempotency.response"
HASH_KEY = "idempotency"  # the service key request hashes are keyed with
# The first answer's headers (Location, ETag) ride in the stored response under this key, so a
# replay sends them too; responses stored before they did replay without them.
_HEADERS = "__headers__"


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    caller: Mapped[str] = mapped_column(String(255), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    route: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int | None] = mapped_column(Integer)
    # a response without personal data, in clear; one with it is in `sealed_response`
    stored_response: Mapped[dict[str, Any] | None] = mapped_column("response", JSON)
    sealed_response: Mapped[str | None] = mapped_column(Text)
    subject_id: Mapped[str | None] = mapped_column(String(255), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    @property
    def response(self) -> dict[str, Any] | None:
        """The response to replay, set only when this claim is a replay."""
        return _replays.get(self)

    @property
    def headers(self) -> dict[str, str]:
        """The first answer's headers to send again with a replay."""
        return _replay_headers.get(self, {})


# Per claim, for the request's lifetime only: the keyring to seal its response with, and the
# opened response of a replay (never written back to the row).
_keyrings: weakref.WeakKeyDictionary[IdempotencyKey, Keyring] = weakref.WeakKeyDictionary()
_replays: weakref.WeakKeyDictionary[IdempotencyKey, dict[str, Any]] = \
    weakref.WeakKeyDictionary()
_replay_headers: weakref.WeakKeyDictionary[IdempotencyKey, dict[str, str]] = \
    weakref.WeakKeyDictionary()


def request_hash(route: str, body: Any, key: bytes | None = None) -> str:
    """What tells a retry from another request with the same key. Keyed (HMAC) when a keyring
    is at hand: a body of personal data could otherwise be confirmed by guessing it."""
    canonical = f"{route}\x00" + json.dumps(body, sort_keys=True, separators=(",", ":"),
                                             default=str)
    if key is None:
        return hashlib.sha256(canonical.encode()).hexdigest()
    return hmac.new(key, canonical.encode(), hashlib.sha256).hexdigest()


def _context(record: IdempotencyKey) -> str:
    return f"idempotency:{record.caller}:{record.key}"


def _open(session: Session, record: IdempotencyKey, keyring: Keyring | None) -> dict[str, Any]:
    if record.sealed_response is None:
        return dict(record.stored_response or {})
    if keyring is None or record.subject_id is None:
        raise RuntimeError("a sealed idempotent response needs its subject and the keyring")
    opened: dict[str, Any] = json.loads(decrypt_field(
        session, keyring, subject_id=record.subject_id, field=SEALED_FIELD,
        context=_context(record), token=record.sealed_response))
    return opened


def claim(session: Session, *, caller: Caller, key: str, route: str, body_hash: str,
          ttl: timedelta, subject_id: str | None = None, keyring: Keyring | None = None,
          legacy_hash: str | None = None) -> IdempotencyKey:
    """Claim `key` for this request, or return the earlier request's record to replay."""
    if not key or len(key) > MAX_KEY_LENGTH:
        raise Invalid(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} characters", field=HEADER)
    now = utcnow()
    existing = session.get(IdempotencyKey, (caller.sub, key))
    if existing is not None and existing.expires_at <= now:
        # expired: the key is free again (a statement, not the ORM's delete, which would fail
        # when a concurrent retry deleted the row first; that one's insert then wins below)
        session.execute(delete(IdempotencyKey).where(
            IdempotencyKey.caller == caller.sub, IdempotencyKey.key == key,
            IdempotencyKey.expires_at <= now))
        existing = None
    if existing is None:
        record = IdempotencyKey(caller=caller.sub, key=key, route=route, request_hash=body_hash,
                                subject_id=subject_id, created_at=now, expires_at=now + ttl)
        try:
            with session.begin_nested():
                session.add(record)
        except IntegrityError:  # another request claimed it first and has committed
            existing = session.get(IdempotencyKey, (caller.sub, key), populate_existing=True)
        else:
            if keyring is not None:
                _keyrings[record] = keyring
            return record
    assert existing is not None  # noqa: S101 - the insert failed because it exists
    if existing.route != route or (existing.erased_at is None and
                                   existing.request_hash not in (body_hash, legacy_hash)):
        raise Invalid(f"this {HEADER} was used with a different request", field=HEADER)
    if existing.status_code is None and existing.erased_at is None:
        raise Conflict(f"a request with this {HEADER} is still being processed")
    try:
        if existing.erased_at is not None:
            raise SubjectErased("the data subject of this request was erased since: its "
                                "response is gone and the request is not carried out again")
        opened = _open(session, existing, keyring)
        _replay_headers[existing] = opened.pop(_HEADERS, None) or {}
        _replays[existing] = opened
    except SubjectErased:
        audit.record(session, caller=caller, action="idempotency.replay_refused",
                     outcome=audit.Outcome.DENIED, resource=f"route:{route}",
                     details={"reason": "subject-erased"})
        raise
    audit.record(session, caller=caller, action="idempotency.replayed",
                 subject_id=existing.subject_id, resource=f"route:{route}",
                 details={"status": existing.status_code,
                          "personal_data": existing.sealed_response is not None})
    return existing


def replay(record: IdempotencyKey, response: Response, status_code: int) -> dict[str, Any]:
    """Answer a replay as the first request was answered: its status, headers and body."""
    response.status_code = record.status_code or status_code
    response.headers.update(record.headers)
    return record.response or {}


def remember(record: IdempotencyKey, status_code: int, response: dict[str, Any],
             headers: Mapping[str, str] | None = None) -> None:
    """Keep the response, and the headers to send again (Location, ETag), for replays: sealed
    under its subject's key when it is about one."""
    record.status_code = status_code
    if headers:
        response = response | {_HEADERS: dict(headers)}
    keyring = _keyrings.get(record)
    if record.subject_id is None or keyring is None:
        record.stored_response = response
        return
    session = Session.object_session(record)
    if session is None:
        raise RuntimeError("the claim of a response about a subject lost its session")
    record.sealed_response = encrypt_field(
        session, keyring, subject_id=record.subject_id, field=SEALED_FIELD,
        context=_context(record), value=json.dumps(response, ensure_ascii=False))


def begin(session: Session, *, caller: Caller, key: str | None, route: str, body: Any,
          settings: Settings, subject_id: str | None = None,
          keyring: Keyring | None = None) -> IdempotencyKey | None:
    """Claim the key for this request (None without a key). A claim whose `response` is set is
    a replay: answer with it and do nothing else. Give `subject_id` when the response is about
    a subject (erasure purges it), and the keyring too when it carries their personal data
    (it is sealed under their key)."""
    if key is None:
        return None
    hash_key = keyring.service_key(session, HASH_KEY) if keyring is not None else None
    plain = request_hash(route, body)
    return claim(session, caller=caller, key=key, route=route,
                 body_hash=request_hash(route, body, hash_key) if hash_key else plain,
                 ttl=timedelta(hours=settings.idempotency_ttl_hours),
                 subject_id=subject_id, keyring=keyring,
                 # entries stored before the hash was keyed (migration 0008) expire in a day
                 legacy_hash=plain)


def forget_subject(session: Session, *, subject_id: str) -> int:
    """Erasure: drop the stored responses about the subject, keeping a marker per key so that a
    replay answers 410 instead of carrying the request out again."""
    result = session.execute(
        update(IdempotencyKey).where(IdempotencyKey.subject_id == subject_id)
        .values({IdempotencyKey.stored_response: None, IdempotencyKey.sealed_response: None,
                 IdempotencyKey.subject_id: None, IdempotencyKey.erased_at: utcnow(),
                 # a hash of a body of personal data, which someone knowing most of it could
                 # confirm by guessing the rest
                 IdempotencyKey.request_hash: ""}))
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count


def purge_expired(session: Session, *, now: datetime | None = None) -> int:
    result = session.execute(delete(IdempotencyKey).where(
        IdempotencyKey.expires_at <= (now or utcnow())))
    count: int = result.rowcount  # type: ignore[attr-defined]
    return count
