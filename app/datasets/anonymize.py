"""Generalise quasi-identifiers to the least general levels that reach k and l, losing the
least information, and suppress the records left in classes too small or too uniform, up to a
limit.

Full-domain generalisation (one level per column for the whole release), searched exactly by
`lattice.search`. Direct identifiers are dropped or replaced by keyed pseudonyms whose key is
random per release and never kept, so two releases cannot be joined.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from app.datasets import lattice, risk
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


def anonymize(rows: Sequence[dict[str, Any]], spec: Dataset, *, k: int, l: int,  # noqa: E741
              max_suppression: float,
              progress: Callable[[int, int], None] = lambda done, total: None) -> Release:
    names = list(spec.quasi_identifiers)
    columns = [lattice.Column.of(kind, [row.get(name) for row in rows])
               for name, kind in spec.quasi_identifiers.items()]
    sensitive = [(codes, len(values)) for codes, values in
                 (lattice.encode(column) for column in risk.columns_of(rows, spec.sensitive))]
    limit = int(max_suppression * len(rows))
    best, closest = lattice.search(columns, sensitive, k=k, l=l, limit=limit,
                                   progress=progress)
    if best is None:
        raise Unreachable({} if closest is None else {
            "levels": lattice.levels_of(names, closest), "suppressed": closest.suppressed,
            "suppression_limit": limit})
    levels = lattice.levels_of(names, best)
    salt = secrets.token_bytes(32)
    labels = [column.labels[level] for column, level in zip(columns, best.node, strict=True)]
    codes = [column.codes[level].tolist() for column, level in
             zip(columns, best.node, strict=True)]
    released = []
    for i in best.keep.nonzero()[0].tolist():
        row = rows[i]
        out: dict[str, Any] = {}
        for name, how in spec.direct_identifiers.items():
            if how == "pseudonymize" and row.get(name) not in (None, ""):
                out[name] = hmac.new(salt, str(row[name]).encode(),
                                     hashlib.sha256).hexdigest()[:24]
        for j, name in enumerate(names):
            out[name] = labels[j][codes[j][i]]
        for name in spec.sensitive:
            out[name] = row.get(name)
        released.append(out)
    # the report counts the released rows themselves, apart from the search's arithmetic
    kept = risk.Classes.of(risk.keys_of(released, names),
                           risk.columns_of(released, spec.sensitive))
    report = risk.report(kept, k=k, l=l, records=len(rows),
                         suppressed=len(rows) - len(released))
    report["levels"] = levels
    report["information_loss"] = lattice.loss_of(names, best)
    report["information_loss_mean"] = round(best.total, 4)
    return Release(rows=released, report=report, levels=levels)


def assess(rows: Sequence[dict[str, Any]], spec: Dataset, *, k: int,
           l: int) -> dict[str, Any]:  # noqa: E741
    """The risk report of rows as they are, over the spec's quasi-identifiers."""
    keys = risk.keys_of(rows, list(spec.quasi_identifiers))
    sensitive = risk.columns_of(rows, spec.sensitive)
    return risk.report(risk.Classes.of(keys, sensitive), k=k, l=l, records=len(rows))
