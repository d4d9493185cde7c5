"""What a keyring keeps about one transaction in its session's `info`, and when it lets go.

Everything is named `pgw_keys_...` and ends with the transaction (commit, rollback or close),
and with the rollback of a savepoint in it: the transaction then reads and locks its subjects'
keys again on its next use of them. Keys the transaction made, or reserved uses on, are its own
(`held`) and reach the process cache only when it commits: if it rolls back, the key or its uses
were never there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import event
from sqlalchemy.orm import Session

from app.keys.cache import KeyCache
from app.keys.datakey import DataKey, SubjectKeys

STATE = "pgw_keys_state"  # the current transaction's InTransaction
# (transaction, statements sent by then, (epoch, latest KEK version, when it was asked)):
# see Keyring.read_ahead
READ_AHEAD = "pgw_keys_read_ahead"
_AT_COMMIT = "pgw_keys_at_commit"  # [(cache, key, epoch)]


@dataclass
class InTransaction:
    transaction: Any
    epoch: int  # the shred epoch it read
    # (subject, version) locked as active, and (subject, 0) once the subject's keys are locked
    checked: set[tuple[str, int]] = field(default_factory=set)
    seen: dict[str, SubjectKeys] = field(default_factory=dict)  # what its locks showed
    held: dict[tuple[str, str], DataKey] = field(default_factory=dict)  # (subject, cipher)


def current(session: Session) -> InTransaction | None:
    """What the keyring knows of the session's transaction, if it has begun to use keys."""
    state: InTransaction | None = session.info.get(STATE)
    transaction = session.get_transaction()
    return state if state is not None and transaction is not None and \
        state.transaction is transaction else None


def begin(session: Session, epoch: int) -> InTransaction:
    state = session.info[STATE] = InTransaction(session.get_transaction(), epoch)
    return state


def of(session: Session) -> InTransaction:
    """The current transaction's state, once it has begun to use keys."""
    state: InTransaction = session.info[STATE]
    return state


def hold(session: Session, cache: KeyCache, key: DataKey) -> None:
    """A key the transaction made or reserved uses on: its own, cached when it commits."""
    state = of(session)
    state.held[(key.subject_id, key.cipher.name)] = key
    session.info.setdefault(_AT_COMMIT, []).append((cache, key, state.epoch))


def forget(session: Session, subject_id: str, versions: Iterable[int]) -> None:
    """The transaction destroyed or retired these versions of the subject's keys: what it saw
    and held of the subject goes, so its next use of them reads and locks them again."""
    state = current(session)
    if state is None:
        return
    state.checked.difference_update({(subject_id, 0), *((subject_id, v) for v in versions)})
    state.seen.pop(subject_id, None)
    for name in [name for name in state.held if name[0] == subject_id]:
        del state.held[name]
    session.info[_AT_COMMIT] = [entry for entry in session.info.get(_AT_COMMIT, ())
                                if entry[1].subject_id != subject_id]


@event.listens_for(Session, "after_commit")
def _cache_committed(session: Session) -> None:
    if not session.in_nested_transaction():  # the transaction itself, not a savepoint
        for cache, key, epoch in session.info.pop(_AT_COMMIT, ()):
            cache.keep(key, epoch=epoch, active=True)


def _let_go(session: Session, *_args: Any) -> None:
    for name in [name for name in session.info if str(name).startswith("pgw_keys_")]:
        del session.info[name]


event.listen(Session, "after_soft_rollback", _let_go)  # of a savepoint too


@event.listens_for(Session, "after_transaction_end")
def _ended(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # committed (and cached above), rolled back or closed
        _let_go(session)
