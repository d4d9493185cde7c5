"""What a queued row must be to become an entry of the log, and what stands in for one that is not.

The service's database role may insert into the queue (`audit_pending`) and nothing else of the
log, so a row it inserts by hand, outside the gateway's code, is the worst the sequencer reads:
JSON of the wrong shape (roles not a list of strings, details not an object), an outcome the log
does not know, a number no canonical JSON can hold (`1e400`), nesting deeper than a parser goes.
Such a row must neither stop the sequencer (every later entry would wait, and integration lag
grow without bound) nor become an entry that breaks every reader of the log. It becomes a
stand-in entry, `audit.entry.malformed`, with the row's time, actor and subject, the reason, and
a digest of what the row held (its values stay out of the log, as every entry's do), and the
sequencer logs an error naming the queued row.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any, cast

from sqlalchemy import Row, Table, Text, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from app.audit import verifier
from app.audit.models import AuditPending
from app.clock import isoformat

MALFORMED = "audit.entry.malformed"
OUTCOMES = frozenset({"allowed", "denied", "error"})  # app.audit.service.Outcome's values
logger = logging.getLogger("pgw.audit.sequencer")
_PENDING = cast(Table, AuditPending.__table__)
# The JSON columns are read as their text and parsed here, so that a row no parser can load
# fails alone instead of failing the batch's SELECT.
_QUEUE = select(*(sql_cast(column, Text).label(column.key) if column.key in ("roles", "details")
                  else column for column in _PENDING.c))


def queued(session: Session, limit: int) -> list[Row[Any]]:
    """Up to `limit` committed rows of the queue, in the order they were queued."""
    return list(session.execute(_QUEUE.order_by(_PENDING.c.id).limit(limit)).all())


def entry(item: Row[Any], *, seq: int, prev: str) -> tuple[dict[str, Any], bytes]:
    """The entry `seq` for the queued row `item`, linked to `prev`, and its canonical bytes
    (hashed as a link of the chain and as a leaf of the tree)."""
    roles, details, problem = _parsed(item)
    fields: dict[str, Any] = {
        "seq": seq, "ts": isoformat(item.ts), "actor": item.actor, "roles": roles,
        "action": item.action, "purpose": item.purpose, "subject_id": item.subject_id,
        "resource": item.resource, "outcome": item.outcome, "details": details,
        "request_id": item.request_id, "policy_version": item.policy_version,
        "prev_hash": prev}
    if problem is None:
        try:
            return fields, verifier.entry_bytes(fields)
        except (ValueError, TypeError, RecursionError) as exc:
            problem = f"no canonical JSON: {type(exc).__name__}"
    logger.error("audit queue row %s is malformed (%s): integrated as %s", item.id, problem,
                 MALFORMED)
    stand_in = {**fields, "roles": [], "action": MALFORMED, "outcome": "error", "details": {
        "queue_id": item.id, "reason": problem, "action": _text(item.action),
        "outcome": _text(item.outcome), "sha256": _digest(item)}}
    return stand_in, verifier.entry_bytes(stand_in)


def _parsed(item: Row[Any]) -> tuple[Any, Any, str | None]:
    try:
        roles, details = _load(item.roles), _load(item.details)
    except (ValueError, TypeError, RecursionError) as exc:
        return [], {}, f"unreadable JSON: {type(exc).__name__}"
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        return roles, details, "roles is not a list of strings"
    if not isinstance(details, dict):
        return roles, details, "details is not an object"
    if item.outcome not in OUTCOMES:
        return roles, details, "unknown outcome"
    for name in ("actor", "action"):
        if not isinstance(getattr(item, name), str):
            return roles, details, f"{name} is not text"
    return roles, details, None


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _text(value: Any) -> str | None:
    return value[:100] if isinstance(value, str) else None


def _digest(item: Row[Any]) -> str:
    """SHA-256 of the row as read, so that a copy kept elsewhere can be matched to this entry."""
    raw = json.dumps([repr(value) for value in item], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
