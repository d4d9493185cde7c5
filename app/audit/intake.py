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

The time is read as a number (PostgreSQL: seconds since the epoch) or as text (SQLite), never
as a datetime by the driver, so a time Python cannot hold (`infinity`, a date BC, a year past
9999) fails its row alone; the stand-in then takes the sequencer's clock and names the time it
could not read. Nesting deeper than `MAX_DEPTH` is refused as well: readers of the log
serialise an entry's details, and their serialisers stop at a depth of a few hundred. So is a row
larger than `MAX_ROW_BYTES`, whose JSON is not even fetched: stored compressed, a few hundred
kilobytes on disk can hold a hundred megabytes of text, which every reader of the log would pay
for (the queue's CHECK refuses such a row; this holds where the CHECK is gone). A batch fetches
at most `BATCH_BYTES` of JSON and one row more, so the sequencer's memory stays bounded
whatever is queued.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, NamedTuple, cast

from sqlalchemy import LargeBinary, Row, Table, Text, bindparam, case, func, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.orm import Session

from app.audit import verifier
from app.audit.models import AuditPending
from app.clock import isoformat, utcnow
from app.db import is_postgres

MALFORMED = "audit.entry.malformed"
OUTCOMES = frozenset({"allowed", "denied", "error"})  # app.audit.service.Outcome's values
MAX_DEPTH = 64  # of nested arrays and objects in details; the gateway's own entries use 3
# roles and details as JSON text: a row beyond it is a stand-in (the queue's CHECK, migration
# 0012, refuses one; the gateway's writer stays below WRITER_MAX_BYTES), and a batch reads no
# more than BATCH_BYTES of them
MAX_ROW_BYTES = 256 * 1024
WRITER_MAX_BYTES = 80 * 1024  # hashed as UTF-8; stored escaped, at most 3 times as long
BATCH_BYTES = 8 * 1024 * 1024
OLDEST_YEAR = 1000  # earlier years are written without four digits on some platforms
logger = logging.getLogger("pgw.audit.sequencer")
_PENDING = cast(Table, AuditPending.__table__)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _queue(*, postgres: bool) -> Any:
    """The queue's rows in order, as far as `BATCH_BYTES` of JSON go (at least one row): the
    JSON columns as their text (parsed here, so that a row no parser can load fails alone
    instead of failing the batch's SELECT), left out of a row larger than `MAX_ROW_BYTES`
    (whose size alone is read), and the time as a number or text (for the same reason). The
    sizes are summed over the ids first; only the rows within the budget are fetched whole."""
    def length(col: Any) -> Any:  # in bytes, as the queue's CHECK counts them
        return func.coalesce(func.octet_length(sql_cast(col, Text)) if postgres
                             else func.length(sql_cast(col, LargeBinary)), 0)

    size = length(_PENDING.c.roles) + length(_PENDING.c.details)
    sizes = select(_PENDING.c.id, size.label("row_bytes"),
                   func.sum(size).over(order_by=_PENDING.c.id).label("running"),
                   ).order_by(_PENDING.c.id).limit(bindparam("limit")).subquery()
    too_large = sizes.c.row_bytes > MAX_ROW_BYTES

    def column(col: Any) -> Any:
        if col.key in ("roles", "details"):
            return case((too_large, None), else_=sql_cast(col, Text)).label(col.key)
        if col.key == "ts":
            return (func.extract("epoch", col) if postgres else sql_cast(col, Text)).label("ts")
        return col
    return select(*(column(col) for col in _PENDING.c if col.key != "queued_at"),
                  sizes.c.row_bytes).join_from(_PENDING, sizes, _PENDING.c.id == sizes.c.id) \
        .where(sizes.c.running - sizes.c.row_bytes < BATCH_BYTES).order_by(_PENDING.c.id)


_QUEUES = {postgres: _queue(postgres=postgres) for postgres in (True, False)}


class Sequenced(NamedTuple):
    fields: dict[str, Any]  # the entry as hashed, `ts` in its canonical text
    body: bytes             # its canonical bytes, hashed as a link of the chain and as a leaf
    ts: datetime


def queued(session: Session, limit: int) -> list[Row[Any]]:
    """Up to `limit` committed rows of the queue, in the order they were queued."""
    return list(session.execute(_QUEUES[is_postgres(session)], {"limit": limit}).all())


def entry(item: Row[Any], *, seq: int, prev: str) -> Sequenced:
    """The entry `seq` for the queued row `item`, linked to `prev`."""
    ts = _time(item.ts)
    roles, details, problem = _parsed(item)
    fields: dict[str, Any] = {
        "seq": seq, "ts": isoformat(ts or _EPOCH), "actor": item.actor, "roles": roles,
        "action": item.action, "purpose": item.purpose, "subject_id": item.subject_id,
        "resource": item.resource, "outcome": item.outcome, "details": details,
        "request_id": item.request_id, "policy_version": item.policy_version,
        "prev_hash": prev}
    if ts is None:
        problem = "unreadable time"
    elif item.row_bytes > MAX_ROW_BYTES:
        problem = f"roles and details larger than {MAX_ROW_BYTES} bytes"
    elif problem is None:
        try:
            return Sequenced(fields, verifier.entry_bytes(fields), ts)
        except (ValueError, TypeError, RecursionError) as exc:
            problem = f"no canonical JSON: {type(exc).__name__}"
    logger.error("audit queue row %s is malformed (%s): integrated as %s", item.id, problem,
                 MALFORMED)
    noted = {"queue_id": item.id, "reason": problem, "action": _text(item.action),
             "outcome": _text(item.outcome), "bytes": item.row_bytes, "sha256": _digest(item)}
    if ts is None:  # the sequencer's clock stands in; what the row said is kept, as text
        ts, noted["ts"] = utcnow(), str(item.ts)[:40]
    stand_in = {**fields, "ts": isoformat(ts), "roles": [], "action": MALFORMED,
                "outcome": "error", "details": noted}
    return Sequenced(stand_in, verifier.entry_bytes(stand_in), ts)


def _time(raw: Any) -> datetime | None:
    """The queued time as an aware UTC datetime, None if Python cannot hold it or it is before
    the year 1000 (PostgreSQL gives seconds since the epoch, exact, or Infinity; SQLite the text
    stored)."""
    try:
        if isinstance(raw, str):
            moment = datetime.fromisoformat(raw)
            moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else \
                moment.astimezone(UTC)
        else:
            seconds = Decimal(raw)
            if not seconds.is_finite():
                return None
            moment = _EPOCH + timedelta(microseconds=int((seconds * 1_000_000)
                                                         .to_integral_value()))
    except (ValueError, TypeError, ArithmeticError, OverflowError):
        return None
    return moment if moment.year >= OLDEST_YEAR else None


def _parsed(item: Row[Any]) -> tuple[Any, Any, str | None]:
    try:
        roles, details = _load(item.roles), _load(item.details)
    except (ValueError, TypeError, RecursionError) as exc:
        return [], {}, f"unreadable JSON: {type(exc).__name__}"
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        return roles, details, "roles is not a list of strings"
    if not isinstance(details, dict):
        return roles, details, "details is not an object"
    raw = item.details
    brackets = raw.count("{") + raw.count("[") if isinstance(raw, str) else MAX_DEPTH + 1
    if brackets > MAX_DEPTH and _deeper_than(details, MAX_DEPTH):  # counting: most rows, fast
        return roles, {}, f"details nested deeper than {MAX_DEPTH} levels"
    if item.outcome not in OUTCOMES:
        return roles, details, "unknown outcome"
    for name in ("actor", "action"):
        if not isinstance(getattr(item, name), str):
            return roles, details, f"{name} is not text"
    return roles, details, None


def _deeper_than(value: Any, limit: int) -> bool:
    """Whether `value` nests arrays and objects more than `limit` deep (without recursion)."""
    level: list[Any] = [value]
    for _ in range(limit):
        level = [child for node in level if isinstance(node, (dict, list))
                 for child in (node.values() if isinstance(node, dict) else node)]
        if not level:
            return False
    return any(isinstance(node, (dict, list)) for node in level)


def _load(value: Any) -> Any:
    return json.loads(value) if isinstance(value, (str, bytes)) else value


def _text(value: Any) -> str | None:
    return value[:100] if isinstance(value, str) else None


def _digest(item: Row[Any]) -> str:
    """SHA-256 of the row as read, so that a copy kept elsewhere can be matched to this entry."""
    raw = json.dumps([repr(value) for value in item], ensure_ascii=False)
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()
