"""Generalise quasi-identifiers to the least general levels that reach k and l, suppressing the
records left in classes too small or too uniform, up to a limit.

Full-domain generalisation (one level per column for the whole release): the search walks the
lattice of level combinations by total height, and the first height with a combination that
meets the target within the suppression limit holds the answer; among those, the one losing
the least information wins. Direct identifiers are dropped or replaced by keyed pseudonyms
whose key is random per release and never kept, so two releases cannot be joined.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.datasets import risk
from app.datasets.hierarchies import generalise, top
from app.policy.models import Dataset


@dataclass(frozen=True)
class Release:
    rows: list[dict[str, Any]]
    report: dict[str, Any]
    levels: dict[str, int]


class Unreachable(Exception):
    """No generalisation reaches the target within the suppression limit."""

    def __init__(self, best: dict[str, Any]):
        super().__init__("the target cannot be reached within the suppression limit")
        self.best = best


def _columns(rows: Sequence[dict[str, Any]], spec: Dataset) -> dict[str, list[list[str]]]:
    """Every quasi-identifier at every level of its hierarchy, computed once."""
    return {name: [[generalise(kind, row.get(name), level) for row in rows]
                   for level in range(top(kind) + 1)]
            for name, kind in spec.quasi_identifiers.items()}


def _loss(spec: Dataset, levels: dict[str, int]) -> dict[str, float]:
    """Per column, how far up its hierarchy it went (0: as given, 1: nothing left)."""
    return {name: round(levels[name] / top(kind), 4)
            for name, kind in spec.quasi_identifiers.items()}


def anonymize(rows: Sequence[dict[str, Any]], spec: Dataset, *, k: int, l: int,  # noqa: E741
              max_suppression: float,
              progress: Callable[[int, int], None] = lambda done, total: None) -> Release:
    names = list(spec.quasi_identifiers)
    columns = _columns(rows, spec)
    sensitive = risk.columns_of(rows, spec.sensitive)
    limit = int(max_suppression * len(rows))
    ranges = [range(top(kind) + 1) for kind in spec.quasi_identifiers.values()]
    nodes = sorted(itertools.product(*ranges), key=sum)
    best: tuple[tuple[float, int], tuple[int, ...], risk.Classes, set[Any]] | None = None
    closest: dict[str, Any] | None = None
    for index, node in enumerate(nodes):
        progress(index, len(nodes))
        if best is not None and sum(node) > sum(best[1]):
            break
        keys = list(zip(*(columns[n][level] for n, level in zip(names, node, strict=True)),
                        strict=True))
        classes = risk.Classes.of(keys, sensitive)
        failing = classes.failing(k, l)
        suppressed = sum(classes.sizes[key] for key in failing)
        if suppressed > limit:
            if closest is None or suppressed < closest["suppressed"]:
                closest = {"levels": dict(zip(names, node, strict=True)),
                           "suppressed": suppressed, "suppression_limit": limit}
            continue
        loss = sum(_loss(spec, dict(zip(names, node, strict=True))).values())
        if best is None or (loss, suppressed) < best[0]:
            best = ((loss, suppressed), node, classes, failing)
    progress(len(nodes), len(nodes))
    if best is None:
        raise Unreachable(closest or {})
    _, node, classes, failing = best
    levels = dict(zip(names, node, strict=True))
    salt = secrets.token_bytes(32)
    released = []
    for i, row in enumerate(rows):
        key = tuple(columns[n][levels[n]][i] for n in names)
        if key in failing:
            continue
        out: dict[str, Any] = {}
        for name, how in spec.direct_identifiers.items():
            if how == "pseudonymize" and row.get(name) not in (None, ""):
                out[name] = hmac.new(salt, str(row[name]).encode(),
                                     hashlib.sha256).hexdigest()[:24]
        for name in names:
            out[name] = key[names.index(name)]
        for name in spec.sensitive:
            out[name] = row.get(name)
        released.append(out)
    kept = {key: size for key, size in classes.sizes.items() if key not in failing}
    kept_classes = risk.Classes(sizes=kept, diversity={key: classes.diversity[key]
                                                       for key in kept if classes.diversity})
    report = risk.report(kept_classes, k=k, l=l, records=len(rows),
                         suppressed=len(rows) - len(released))
    report["levels"] = levels
    report["information_loss"] = _loss(spec, levels)
    return Release(rows=released, report=report, levels=levels)


def assess(rows: Sequence[dict[str, Any]], spec: Dataset, *, k: int,
           l: int) -> dict[str, Any]:  # noqa: E741
    """The risk report of rows as they are, over the spec's quasi-identifiers."""
    keys = risk.keys_of(rows, list(spec.quasi_identifiers))
    sensitive = risk.columns_of(rows, spec.sensitive)
    return risk.report(risk.Classes.of(keys, sensitive), k=k, l=l, records=len(rows))
