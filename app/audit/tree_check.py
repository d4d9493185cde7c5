"""The stored tree held against the entries: which node proofs are built from, or which leaf,
no longer matches the tree recomputed from the log, and which node lies outside it
(`pgw audit verify`)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.audit import verifier
from app.audit.models import AuditTreeNode
from app.audit.tree import NodeKey


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
