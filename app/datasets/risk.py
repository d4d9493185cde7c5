"""Re-identification risk of a dataset: equivalence classes over the quasi-identifiers, their
sizes (k), the diversity of the sensitive attributes in each (distinct l-diversity), and the
prosecutor risk (1 / class size) each record carries."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Classes:
    sizes: dict[tuple[str, ...], int]
    diversity: dict[tuple[str, ...], int]  # the fewest distinct values of any sensitive attribute

    @classmethod
    def of(cls, keys: Sequence[tuple[str, ...]],
           sensitive: Sequence[Sequence[str]]) -> Classes:
        sizes: dict[tuple[str, ...], int] = {}
        for key in keys:
            sizes[key] = sizes.get(key, 0) + 1
        diversity: dict[tuple[str, ...], int] = {}
        for column in sensitive:
            seen: dict[tuple[str, ...], set[str]] = {}
            for key, value in zip(keys, column, strict=True):
                seen.setdefault(key, set()).add(value)
            for key, values in seen.items():
                diversity[key] = min(diversity.get(key, len(values)), len(values))
        return cls(sizes=sizes, diversity=diversity)

    def failing(self, k: int, l: int) -> set[tuple[str, ...]]:  # noqa: E741 - the usual name
        """Classes smaller than k, or with fewer than l distinct sensitive values."""
        return {key for key, size in self.sizes.items()
                if size < k or (self.diversity and self.diversity[key] < l)}


def report(classes: Classes, *, k: int, l: int, records: int,  # noqa: E741
           suppressed: int = 0) -> dict[str, Any]:
    """The risk report of what is released (or assessed)."""
    if not classes.sizes:
        return {"records": records, "released": 0, "suppressed": suppressed, "classes": 0,
                "k": None, "l": None, "smallest_class": None, "max_prosecutor_risk": None,
                "records_at_risk": 0, "share_at_risk": 0.0, "k_target": k, "l_target": l,
                "meets_target": False}
    released = sum(classes.sizes.values())
    smallest = min(classes.sizes.values())
    at_risk = sum(size for size in classes.sizes.values() if size < k)  # risk 1/size > 1/k
    reached_l = min(classes.diversity.values()) if classes.diversity else None
    return {
        "records": records, "released": released, "suppressed": suppressed,
        "classes": len(classes.sizes), "k": smallest, "l": reached_l,
        "smallest_class": smallest, "max_prosecutor_risk": round(1 / smallest, 6),
        "records_at_risk": at_risk, "share_at_risk": round(at_risk / released, 6),
        "k_target": k, "l_target": l,
        "meets_target": smallest >= k and (reached_l is None or reached_l >= l),
    }


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def keys_of(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[tuple[str, ...]]:
    return [tuple(_text(row.get(n)) for n in names) for row in rows]


def columns_of(rows: Sequence[dict[str, Any]], names: Sequence[str]) -> list[list[str]]:
    """The named columns as text, one list per column (the sensitive attributes)."""
    return [[_text(row.get(n)) for row in rows] for n in names]
