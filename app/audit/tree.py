"""The Merkle tree over the audit log: integration of committed entries, signed checkpoints,
and inclusion and consistency proofs (RFC 9162).

Only the sequencer writes the log and the tree. Each integration is one transaction that locks
the sequencer's row (`audit_sequencer`, FOR UPDATE: only a role that may UPDATE it can, so the
service's role cannot stall the sequencer; SQLite serialises every write transaction anyway),
reads the tree size from the database, moves committed entries from the queue onto the chain,
adds the leaves and every perfect subtree they complete, and may sign a checkpoint. Two
sequencers therefore take turns, and one killed mid-batch leaves nothing behind: no gap, no
fork, no duplicate (a duplicate node would also violate the primary key).

Proofs are built from stored perfect-subtree hashes: every range the RFC's recursion asks for
is either such a subtree or splits into them, so a proof costs one query of O(log² n) rows.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta
from typing import cast

from sqlalchemy import Table, bindparam, delete, func, select, tuple_
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.audit import intake, verifier
from app.audit.models import (
    AuditCheckpoint,
    AuditEntry,
    AuditPending,
    AuditSequencer,
    AuditTreeNode,
)
from app.clock import isoformat, utcnow
from app.db import copy_rows, is_postgres
from app.keys.signing import Signer

BATCH = 2000
# `_sequence_queue` reads the queue as rows and the new entries and tree nodes are written by
# `copy_rows` (COPY on PostgreSQL), not through the ORM: they are never changed, and the ORM's
# loading and bulk paths were most of the sequencer's CPU.
_PENDING = cast(Table, AuditPending.__table__)
_ENTRIES = cast(Table, AuditEntry.__table__)
_NODES = cast(Table, AuditTreeNode.__table__)
_PENDING_DELETE = delete(_PENDING).where(_PENDING.c.id.in_(bindparam("ids", expanding=True)))
logger = logging.getLogger("pgw.audit.tree")
NodeKey = tuple[int, int]
Getter = Callable[[int, int], bytes]


@dataclass(frozen=True)
class Integration:
    size: int          # tree size after this integration
    added: int         # leaves added
    checkpoint: AuditCheckpoint | None


def tree_size(session: Session) -> int:
    """Leaves in the stored tree: one past the last leaf of an entry the log holds (a leaf
    planted beyond the entries does not count; `pgw audit verify` names it)."""
    entries = select(func.coalesce(func.max(AuditEntry.seq), 0)).scalar_subquery()
    last = session.scalar(select(func.max(AuditTreeNode.idx)).where(
        AuditTreeNode.level == 0, AuditTreeNode.idx < entries))
    return 0 if last is None else last + 1


def lock(session: Session, *, wait: bool) -> bool:
    """Lock the sequencer's row for this transaction; False if `wait` is off and it is held.
    (SQLite: every write transaction already holds the database's write lock.)"""
    if not is_postgres(session):
        return True
    query = select(AuditSequencer.id).where(AuditSequencer.id == 1)
    row = session.scalar(query.with_for_update(skip_locked=not wait))
    if row is None and wait:
        raise LookupError("the audit_sequencer row is missing: run pgw migrate")
    return row is not None


def _peaks_at(size: int) -> list[NodeKey]:
    """The perfect subtrees whose hashes make the compact range of a tree of `size` leaves."""
    keys, start = [], 0
    for level in range(size.bit_length() - 1, -1, -1):
        if size >> level & 1:
            keys.append((level, start >> level))
            start += 1 << level
    return keys


class TreeDamaged(LookupError):
    """A node of the stored tree is missing or unreadable: the tree was tampered with."""


def _stored(session: Session, keys: Iterable[NodeKey]) -> dict[NodeKey, str]:
    """The stored hashes (hex, as stored) of those of `keys` the table has."""
    wanted = sorted(set(keys))
    found: dict[NodeKey, str] = {}
    for start in range(0, len(wanted), 500):
        chunk = wanted[start:start + 500]
        rows = session.execute(select(AuditTreeNode.level, AuditTreeNode.idx, AuditTreeNode.hash)
                               .where(tuple_(AuditTreeNode.level, AuditTreeNode.idx).in_(chunk)))
        found.update({(level, idx): h for level, idx, h in rows})
    return found


def _fetch(session: Session, keys: Iterable[NodeKey]) -> dict[NodeKey, bytes]:
    wanted = set(keys)
    found = _stored(session, wanted)
    nodes: dict[NodeKey, bytes] = {}
    for key in sorted(wanted):
        try:
            nodes[key] = bytes.fromhex(found[key])
        except (KeyError, ValueError):
            raise TreeDamaged(f"the audit tree's node {key} (level, index) is missing or "
                              "unreadable: it was tampered with") from None
        if len(nodes[key]) != 32:
            raise TreeDamaged(f"the audit tree's node {key} (level, index) is not a hash: it "
                              "was tampered with")
    return nodes


def compact_range(session: Session, size: int) -> verifier.CompactRange:
    keys = _peaks_at(size)
    nodes = _fetch(session, keys)
    return verifier.CompactRange(size, [nodes[key] for key in keys])


def integrate(session: Session, *, signer: Signer | None, origin: str, checkpoint_every: int,
              checkpoint_interval: timedelta, wait: bool = False,
              limit: int = BATCH) -> Integration | None:
    """Sequence up to `limit` committed entries: number them, link them onto the hash chain and
    add them to the tree; sign a checkpoint when the size crosses a multiple of
    `checkpoint_every` or the last one is older than `checkpoint_interval`. None when another
    sequencer holds the lock (and `wait` is off)."""
    if not lock(session, wait=wait):
        return None
    size = tree_size(session)
    tree = compact_range(session, size)
    nodes: list[dict[str, object]] = []
    head = _numbered(session, tree, nodes, limit)
    if tree.size - size < limit:
        head = _sequence_queue(session, tree, nodes, limit - (tree.size - size),
                               signer=signer) or head
    if nodes:
        try:
            copy_rows(session, _NODES, nodes)
        except IntegrityError:  # the sequencer's lock rules out a second writer of the tree
            raise TreeDamaged(f"the audit tree already holds a node the sequencer must write "
                              f"next (after size {size}): it was planted; `pgw audit verify` "
                              "names it") from None
    checkpoint = None
    if signer is not None and tree.size > 0 and _checkpoint_due(
            session, size=size, new_size=tree.size, every=checkpoint_every,
            interval=checkpoint_interval):
        checkpoint = _sign(session, signer=signer, origin=origin, size=tree.size,
                           head=head or _head_at(session, tree.size), root=tree.root())
    session.flush()
    return Integration(tree.size, tree.size - size, checkpoint)


def _add_leaf(tree: verifier.CompactRange, nodes: list[dict[str, object]],
              body: bytes) -> None:
    """The entry whose canonical bytes are `body` as the tree's next leaf."""
    nodes.extend({"level": level, "idx": idx, "hash": node.hex()}
                 for level, idx, node in tree.append(verifier.leaf_hash(body)))


def _numbered(session: Session, tree: verifier.CompactRange, nodes: list[dict[str, object]],
              limit: int) -> str | None:
    """Entries numbered but not in the tree yet (those written before the tree existed). Each
    must be the next valid link of the chain: a row planted out of turn stops the sequencer
    (and is named by verify) instead of being integrated."""
    head = None
    prev = _head_at(session, tree.size) if tree.size else verifier.GENESIS_HASH
    for entry in session.scalars(select(AuditEntry).where(AuditEntry.seq > tree.size)
                                 .order_by(AuditEntry.seq).limit(limit)):
        body = verifier.entry_bytes(entry_fields(entry))  # hashed as a link and as a leaf
        if entry.seq != tree.size + 1:
            raise LookupError(f"audit entry {tree.size + 1} is missing: the log has a gap")
        if entry.prev_hash != prev or verifier.entry_digest(body) != entry.hash:
            raise LookupError(f"audit entry {entry.seq} is not a valid link of the chain")
        _add_leaf(tree, nodes, body)
        head = prev = entry.hash
    return head


def _sequence_queue(session: Session, tree: verifier.CompactRange,
                    nodes: list[dict[str, object]], limit: int,
                    signer: Signer | None) -> str | None:
    """Move committed entries from the queue onto the chain, in the order they were queued."""
    pending = intake.queued(session, limit)
    if not pending:
        return None
    signed = _signed_beyond(session, tree.size, signer)
    if signed is not None:
        raise LookupError(f"the audit log has {tree.size} entries in its tree and a signed "
                          f"checkpoint of {signed}: it was truncated; run `pgw audit verify`")
    prev = _head_at(session, tree.size) if tree.size else verifier.GENESIS_HASH
    entries = []
    for item in pending:  # a malformed row becomes a stand-in entry, not a stalled log
        made = intake.entry(item, seq=tree.size + 1, prev=prev)
        prev = verifier.entry_digest(made.body)
        entries.append({**made.fields, "ts": made.ts, "hash": prev})
        _add_leaf(tree, nodes, made.body)
    copy_rows(session, _ENTRIES, entries)
    session.execute(_PENDING_DELETE, {"ids": [p.id for p in pending]})
    return prev


def _signed_beyond(session: Session, size: int, signer: Signer | None) -> int | None:
    """The size of a genuinely signed checkpoint beyond `size`, if there is one (rows nobody
    signed are not evidence of anything)."""
    for checkpoint in session.scalars(select(AuditCheckpoint).where(AuditCheckpoint.size > size)
                                      .order_by(AuditCheckpoint.size.desc()).limit(20)):
        body = {"size": checkpoint.size, "head": checkpoint.head,
                "created_at": isoformat(checkpoint.created_at), "key_id": checkpoint.key_id,
                "signature": checkpoint.signature}
        if signer is None or verifier.checkpoint_signature_ok(body, signer.public_key):
            return checkpoint.size
    return None


def _checkpoint_due(session: Session, *, size: int, new_size: int, every: int,
                    interval: timedelta) -> bool:
    last = session.execute(select(AuditCheckpoint.size, AuditCheckpoint.created_at,
                                  AuditCheckpoint.root)
                           .order_by(AuditCheckpoint.size.desc()).limit(1)).first()
    if last is None or last.root is None:
        return True  # the first checkpoint with a root
    if last.size >= new_size:
        return False
    return new_size // every > size // every or utcnow() - last.created_at >= interval


def _head_at(session: Session, size: int) -> str:
    head = session.scalar(select(AuditEntry.hash).where(AuditEntry.seq == size))
    if head is None:
        raise LookupError(f"audit entry {size} is missing")
    return head


def _sign(session: Session, *, signer: Signer, origin: str, size: int, head: str,
          root: bytes) -> AuditCheckpoint:
    existing = session.scalar(select(AuditCheckpoint).where(AuditCheckpoint.size == size))
    if existing is not None:
        return existing
    now = utcnow()
    body = {"size": size, "head": head, "created_at": isoformat(now), "key_id": signer.key_id}
    note = verifier.note_body(origin, size, root)
    signature = signer.private_key.sign(note.encode())
    note += "\n" + verifier.signature_line(origin, signer.public_key, signature)
    checkpoint = AuditCheckpoint(size=size, head=head, created_at=now, key_id=signer.key_id,
                                 signature=signer.sign(verifier.checkpoint_message(body)),
                                 root=root.hex(), note=note)
    session.add(checkpoint)
    return checkpoint


def entry_fields(entry: AuditEntry) -> dict[str, object]:
    return {"seq": entry.seq, "ts": isoformat(entry.ts), "actor": entry.actor,
            "roles": entry.roles, "action": entry.action, "purpose": entry.purpose,
            "subject_id": entry.subject_id, "resource": entry.resource,
            "outcome": entry.outcome, "details": entry.details,
            "request_id": entry.request_id, "policy_version": entry.policy_version,
            "prev_hash": entry.prev_hash}


# --- proofs -----------------------------------------------------------------------------------

def _range_hash(start: int, end: int, node: Getter) -> bytes:
    """MTH of leaves [start, end) as the RFC's recursion splits it: aligned perfect subtrees
    are stored nodes, anything else splits at the largest power of two."""
    width = end - start
    if width & (width - 1) == 0 and start % width == 0:
        level = width.bit_length() - 1
        return node(level, start >> level)
    k = verifier.largest_power_of_two_below(width)
    return verifier.node_hash(_range_hash(start, start + k, node),
                              _range_hash(start + k, end, node))


def _path(index: int, start: int, end: int, node: Getter) -> list[bytes]:
    """RFC 9162 PATH(m, D[start:end]), leaf `index` counted from `start`."""
    if end - start == 1:
        return []
    k = verifier.largest_power_of_two_below(end - start)
    if index < k:
        return _path(index, start, start + k, node) + [_range_hash(start + k, end, node)]
    return _path(index - k, start + k, end, node) + [_range_hash(start, start + k, node)]


def _subproof(m: int, start: int, end: int, complete: bool, node: Getter) -> list[bytes]:
    """RFC 9162 SUBPROOF(m, D[start:end], b)."""
    n = end - start
    if m == n:
        return [] if complete else [_range_hash(start, end, node)]
    k = verifier.largest_power_of_two_below(n)
    if m <= k:
        return _subproof(m, start, start + k, complete, node) + [
            _range_hash(start + k, end, node)]
    return _subproof(m - k, start + k, end, False, node) + [_range_hash(start, start + k, node)]


def _with_nodes(session: Session, build: Callable[[Getter], list[bytes]]) -> list[bytes]:
    """Run `build` twice: once to learn which nodes it reads, then on those nodes fetched in
    one query."""
    wanted: set[NodeKey] = set()

    def record(level: int, idx: int) -> bytes:
        wanted.add((level, idx))
        return b"\x00" * 32

    build(record)
    nodes = _fetch(session, wanted)
    return build(lambda level, idx: nodes[(level, idx)])


def inclusion_proof(session: Session, *, seq: int, size: int) -> list[bytes]:
    if not 1 <= seq <= size:
        raise ValueError("the entry is outside the tree")
    return _with_nodes(session, lambda node: _path(seq - 1, 0, size, node))


def consistency_proof(session: Session, *, first: int, second: int) -> list[bytes]:
    if not 0 <= first <= second:
        raise ValueError("the first size must not exceed the second")
    if first in (0, second):
        return []
    return _with_nodes(session, lambda node: _subproof(first, 0, second, True, node))


def root_at(session: Session, size: int) -> bytes:
    if size == 0:
        return verifier.EMPTY_ROOT
    return _with_nodes(session, lambda node: [_range_hash(0, size, node)])[0]


def latest_checkpoint(session: Session) -> AuditCheckpoint | None:
    return session.scalar(select(AuditCheckpoint).where(AuditCheckpoint.root.is_not(None))
                          .order_by(AuditCheckpoint.size.desc()).limit(1))


def checkpoint_at(session: Session, size: int) -> AuditCheckpoint | None:
    return session.scalar(select(AuditCheckpoint).where(AuditCheckpoint.size == size,
                                                        AuditCheckpoint.root.is_not(None)))


def integration_lag(session: Session) -> tuple[int, float]:
    """Entries waiting for the sequencer, and seconds since the oldest of them was queued, both
    by the database's clock (`queued_at`, which no writer sets: an entry's own `ts` is what its
    writer says)."""
    oldest = func.min(AuditPending.queued_at)
    age = func.extract("epoch", func.clock_timestamp() - oldest) if is_postgres(session) else \
        (func.julianday("now") - func.julianday(oldest)) * 86400.0
    count, lag = session.execute(select(func.count(), age)).one()
    return (count, max(0.0, float(lag))) if count else (0, 0.0)
