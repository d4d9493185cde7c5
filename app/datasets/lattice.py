"""The search for the least general generalisation that reaches k and l, losing the least
information.

Every quasi-identifier is encoded once at every level of its hierarchy as integer codes, so a
combination of levels (a node of the lattice) is judged with a few vectorised passes: the
equivalence classes, their sizes, the distinct sensitive values in each, and the records that
would have to be suppressed.

A node qualifies when at most `limit` records fall in classes that miss k or l, and when it is
least general: one level lower on any column would need more suppression than that. (Nodes that
meet the target form an upward-closed set, since merging classes never makes them smaller or
less diverse, so a node with no qualifying neighbour below has no qualifying node below at all.)
Among the qualifying nodes the one losing the least information wins.

Information loss is the loss metric (LM, Iyengar 2002), measured on the data: a cell
generalised to a value that covers g of the column's D distinct values loses (g - 1) / (D - 1);
a suppressed record loses 1 in every column. A column's loss is the mean over all records, and
the release's the mean over the columns. Generalisation alone gives each node a lower bound,
so nodes are judged in the order of their bound and the search stops at the first bound that
cannot beat the best node found (branch and bound, exact). A node more specific than one that
failed fails too, and is skipped.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.datasets.hierarchies import generalise, top

Codes = npt.NDArray[np.int64]
Node = tuple[int, ...]


def encode(values: Sequence[str]) -> tuple[Codes, list[str]]:
    """Each value's code, and the values in code order."""
    index: dict[str, int] = {}
    codes = np.fromiter((index.setdefault(v, len(index)) for v in values), dtype=np.int64,
                        count=len(values))
    return codes, list(index)


@dataclass(frozen=True)
class Column:
    """One quasi-identifier at every level: codes per record, labels per code, and the loss
    of each record's cell."""

    codes: list[Codes]
    labels: list[list[str]]
    cell_loss: list[npt.NDArray[np.float64]]

    @classmethod
    def of(cls, kind: str, values: Sequence[Any]) -> Column:
        originals, reps = encode([generalise(kind, v, 0) for v in values])
        first: dict[int, Any] = {}  # one raw value per distinct original, to generalise from
        for value, code in zip(values, originals.tolist(), strict=True):
            first.setdefault(code, value)
        distinct = len(reps)
        codes, labels, losses = [], [], []
        for level in range(top(kind) + 1):
            mapped, names = encode([generalise(kind, first[c], level) for c in range(distinct)])
            covered = np.bincount(mapped)[mapped]  # originals under each original's value
            loss = (covered - 1) / (distinct - 1) if distinct > 1 else np.zeros(distinct)
            codes.append(mapped[originals])
            labels.append(names)
            losses.append(loss[originals])
        return cls(codes=codes, labels=labels, cell_loss=losses)


@dataclass(frozen=True)
class Judged:
    node: Node
    suppressed: int
    loss: tuple[float, ...]  # per column, suppression included
    keep: npt.NDArray[np.bool_]  # per record

    @property
    def total(self) -> float:
        return sum(self.loss) / len(self.loss)


def _classes(columns: Sequence[Column], node: Node) -> tuple[Codes, Codes]:
    """Each record's class and each class's size."""
    key = np.zeros(len(columns[0].codes[0]), dtype=np.int64)
    span = 1
    for column, level in zip(columns, node, strict=True):
        width = len(column.labels[level])
        if span * width >= 2**62:  # re-number before the product can overflow
            _, inverse = np.unique(key, return_inverse=True)
            key, span = inverse.astype(np.int64), int(inverse.max()) + 1
        key = key * width + column.codes[level]
        span *= width
    _, inverse, sizes = np.unique(key, return_inverse=True, return_counts=True)
    return inverse.astype(np.int64), sizes.astype(np.int64)


def judge(columns: Sequence[Column], sensitive: Sequence[tuple[Codes, int]], node: Node, *,
          k: int, l: int) -> Judged:  # noqa: E741 - the usual name
    classes, sizes = _classes(columns, node)
    failing = sizes < k
    for codes, width in sensitive:
        pairs = np.unique(classes * width + codes)
        failing |= np.bincount(pairs // width, minlength=len(sizes)) < l
    keep = ~failing[classes]
    records = len(classes)
    loss = tuple(float((column.cell_loss[level][keep].sum() + (records - keep.sum()))
                       / records) for column, level in zip(columns, node, strict=True))
    return Judged(node=node, suppressed=int(sizes[failing].sum()), loss=loss, keep=keep)


def _below(node: Node, other: Node) -> bool:
    return all(a <= b for a, b in zip(node, other, strict=True))


def search(columns: Sequence[Column], sensitive: Sequence[tuple[Codes, int]], *, k: int,
           l: int, limit: int,  # noqa: E741
           progress: Callable[[int, int], None]) -> tuple[Judged | None, Judged | None]:
    """The least general node suppressing at most `limit` records that loses the least
    information, if any; and the failing node that came closest (fewest suppressed)."""
    heights = [len(column.codes) for column in columns]
    mean_loss = [[float(loss.mean()) for loss in column.cell_loss] for column in columns]
    seen: dict[Node, tuple[int, float]] = {}  # suppressed, loss; records' masks are not kept
    failed: list[Node] = []  # the most general nodes known to fail: all below them fail too
    best: tuple[float, int, Node] | None = None
    closest: Judged | None = None

    def bound(node: Node) -> float:
        return sum(mean_loss[i][level] for i, level in enumerate(node)) / len(node)

    def evaluate(node: Node) -> tuple[int, float]:
        nonlocal closest, failed
        if node not in seen:
            found = judge(columns, sensitive, node, k=k, l=l)
            seen[node] = (found.suppressed, found.total)
            if found.suppressed > limit:
                failed = [f for f in failed if not _below(f, node)] + [node]
                if closest is None or found.suppressed < closest.suppressed:
                    closest = found
        return seen[node]

    def meets(node: Node) -> bool:
        return not any(_below(node, f) for f in failed) and evaluate(node)[0] <= limit

    def least_general(node: Node) -> bool:
        below = (node[:i] + (level - 1,) + node[i + 1:] for i, level in enumerate(node) if level)
        return not any(meets(lower) for lower in below)

    nodes = sorted(itertools.product(*(range(h) for h in heights)),
                   key=lambda node: (bound(node), sum(node)))
    for index, node in enumerate(nodes):
        progress(index, len(nodes))
        if best is not None and bound(node) >= best[0] - 1e-12:
            break
        if meets(node) and least_general(node):
            count, total = seen[node]
            if best is None or (total, count) < best[:2]:
                best = (total, count, node)
    progress(len(nodes), len(nodes))
    return (None if best is None else judge(columns, sensitive, best[2], k=k, l=l)), closest


def levels_of(names: Sequence[str], judged: Judged) -> dict[str, int]:
    return dict(zip(names, judged.node, strict=True))


def loss_of(names: Sequence[str], judged: Judged) -> Mapping[str, float]:
    return {name: round(value, 4) for name, value in zip(names, judged.loss, strict=True)}
