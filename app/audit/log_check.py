"""Verification of the stored log (`pgw audit verify`, `GET /v1/audit/verify`): the chain and
the tree recomputed from the entries, held against every checkpoint and against the tree the
sequencer stored: which node proofs are built from, or which leaf, no longer matches, and which
node lies outside it."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import service as audit
from app.audit import tree, verifier
from app.audit.models import AuditCheckpoint, AuditTreeNode
from app.audit.tree import NodeKey
from app.db import is_postgres
from app.keys.signing import Signer


class NodeCheck:
    """Compares the nodes of a tree recomputed from the entries (fed in the order the sequencer
    wrote them, as `verifier.CompactRange.append` makes them) with the stored tree, the nodes
    inclusion and consistency proofs are built from; `damaged` is the first node (level, index)
    missing or different."""

    def __init__(self, session: Session, size: int) -> None:
        self.session, self.size = session, size  # nodes over entries beyond it are not judged
        self.damaged: NodeKey | None = None
        self._made: list[tuple[int, int, bytes]] = []

    def add(self, made: Iterable[tuple[int, int, bytes]]) -> None:
        if self.damaged is None:
            self._made.extend(node for node in made if (node[1] + 1) << node[0] <= self.size)
            if len(self._made) >= 2000:
                self.finish()

    def finish(self) -> NodeKey | None:
        if self.damaged is None and self._made:
            self.damaged = self._judge()
        self._made.clear()
        return self.damaged

    def _judge(self) -> NodeKey | None:
        spans: dict[int, tuple[int, int]] = {}
        for level, idx, _ in self._made:
            low, high = spans.get(level, (idx, idx))
            spans[level] = (min(low, idx), max(high, idx))
        stored = {level: _span(self.session, level, low, high)  # a range a level: cheaper
                  for level, (low, high) in spans.items()}      # than the keys one by one
        for level, idx, node in self._made:
            if stored[level].get(idx) != node.hex():
                return level, idx
        return None


def first_changed_leaf(session: Session, entries: Iterable[Mapping[str, Any]]) -> int | None:
    """The first entry (in the order given) whose leaf hash is not the one the sequencer stored
    for it: where a chain recomputed after an edit only shows a break at the next entry, the
    tree still names the edited one. Entries without a stored leaf are not judged."""
    batch: list[Mapping[str, Any]] = []

    def judge() -> int | None:
        stored = _span(session, 0, int(batch[0]["seq"]) - 1, int(batch[-1]["seq"]) - 1)
        for entry in batch:
            leaf = stored.get(int(entry["seq"]) - 1)
            if leaf is not None and leaf != verifier.entry_leaf_hash(entry).hex():
                return int(entry["seq"])
        return None

    for entry in entries:
        batch.append(entry)
        if len(batch) == 500:
            changed = judge()
            if changed is not None:
                return changed
            batch = []
    return judge() if batch else None


MAX_LEVEL = 63  # a tree of fewer than 2^63 leaves (BIGINT indexes) has no node above it


def stray_node(session: Session, size: int) -> NodeKey | None:
    """The first stored node (level, index) outside the tree of `size` leaves: a level or an
    index out of range, or a node over leaves the tree does not have yet. The sequencer never
    writes one; one planted would stop it when the tree reaches it. A few index lookups a level
    (the primary key's), not a scan of the table."""
    low_level, high_level = session.execute(
        select(func.min(AuditTreeNode.level), func.max(AuditTreeNode.level))).one()
    if low_level is None:
        return None
    for level in (low_level, high_level):
        if not 0 <= level <= MAX_LEVEL:
            return level, _first(session, level)
    for level in range(low_level, high_level + 1):
        low, high = session.execute(select(func.min(AuditTreeNode.idx), func.max(
            AuditTreeNode.idx)).where(AuditTreeNode.level == level)).one()
        if low is None:
            continue
        if low < 0:
            return level, low
        width = size >> level  # nodes at this level: indexes 0 .. width - 1
        if high >= width:
            return level, _first(session, level, at_least=width)
    return None


def _first(session: Session, level: int, *, at_least: int | None = None) -> int:
    query = select(func.min(AuditTreeNode.idx)).where(AuditTreeNode.level == level)
    if at_least is not None:
        query = query.where(AuditTreeNode.idx >= at_least)
    return int(session.scalar(query) or 0)


def _span(session: Session, level: int, low: int, high: int) -> dict[int, str]:
    """The stored hashes (hex, as stored) of level `level`'s nodes `low` to `high`, by index."""
    rows = session.execute(select(AuditTreeNode.idx, AuditTreeNode.hash).where(
        AuditTreeNode.level == level, AuditTreeNode.idx.between(low, high)))
    return {idx: h for idx, h in rows}  # noqa: C416 - a Result is no mapping for dict()


def verify_log(session: Session, *, signer: Signer | None,
               public_key: Ed25519PublicKey | None = None, roots_at: Iterable[int] = (),
               progress: Callable[[int, int], None] | None = None) -> verifier.Verification:
    """Recompute the chain and the tree from the entries; compare them with every checkpoint
    (signed with `public_key`, by default the signer's) and with the tree the sequencer stored.
    The roots recomputed at the sizes in `roots_at` are kept in the result."""
    if is_postgres(session) and not session.in_transaction():
        # one snapshot for every read below: a sequencer committing meanwhile would otherwise
        # show leaves and nodes past the tree size read at the start, as if planted
        session.connection(execution_options={"isolation_level": "REPEATABLE READ",
                                              "postgresql_readonly": True})
    checkpoints = [audit.checkpoint_dict(c) for c in session.scalars(select(AuditCheckpoint))]
    if public_key is None and signer is not None:
        public_key = signer.public_key
    size = tree.tree_size(session)
    # the stored tree is judged as far as a signed checkpoint reached, whatever is missing at its
    # end: proofs in that checkpoint's tree need every node of it
    signed = tree.latest_checkpoint(session)
    judged = max(size, signed.size if signed is not None else 0)
    entries = audit.iter_entries(session)
    if progress is not None:
        entries = _counted(entries, total=audit.head(session)[0], progress=progress)
    nodes = NodeCheck(session, judged)  # the nodes proofs are built from
    result = verifier.verify(entries, checkpoints, public_key, roots_at=roots_at,
                             on_nodes=nodes.add)
    if not result.ok:  # an entry edited and its hash (or the whole chain after it) recomputed
        # shows first as the break after it: the leaves the sequencer stored name it
        up_to = result.first_bad_seq or size
        changed = first_changed_leaf(session, audit.iter_entries(session, up_to=up_to))
        if changed is not None and changed != result.first_bad_seq:
            result.first_bad_seq = changed
            result.reason = (f"entry {changed} differs from the leaf the sequencer stored for "
                             f"it; then: {result.reason}")
    elif judged and (damaged := nodes.finish()) is not None:  # the entries hold, the tree not
        level, idx = damaged
        first, last = idx * 2**level + 1, min((idx + 1) * 2**level, judged)
        result.ok, result.reason = False, (
            f"the stored Merkle tree's node at level {level}, index {idx} (over entries "
            f"{first}-{last}) is missing or does not match the entries, which match the signed "
            "checkpoints: proofs through it fail; the tree was tampered with. Repair: as the "
            f"owner, delete the nodes over entries after {first - 1} (README \"Repairing the "
            f"stored tree\", K = {first - 1}); the sequencer writes them again from the entries")
    elif (stray := stray_node(session, judged)) is not None:
        level, idx = stray
        result.ok, result.reason = False, (
            f"the stored Merkle tree holds a node at level {level}, index {idx}, outside the "
            f"tree of {judged} entries: the sequencer writes none there, so it was planted (or "
            "the leaves under it deleted); one ahead of the tree stops the sequencer when it "
            "gets there. The entries match the signed checkpoints. Repair: as the owner, delete "
            f"every node outside the tree (README \"Repairing the stored tree\", K = {judged}); "
            "the sequencer writes the tree's end again from the entries")
    return result


def _counted(entries: Iterator[dict[str, Any]], *, total: int,
             progress: Callable[[int, int], None]) -> Iterator[dict[str, Any]]:
    done = 0
    progress(0, total)
    for done, entry in enumerate(entries, start=1):  # noqa: B007 - read after the loop
        yield entry
        if done % audit.BATCH == 0:
            progress(done, total)
    progress(max(done, total), total)
