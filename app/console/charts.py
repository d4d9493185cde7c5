"""Consent given and withdrawn per day, drawn as SVG on the server: bars up for consents given,
down for withdrawn ones, one chart per purpose. No script and no style attribute, so the page's
policy stays strict."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, timedelta

WIDTH, HEIGHT, MARGIN = 600, 120, 4


@dataclass
class Series:
    purpose: str
    given: dict[str, int] = field(default_factory=dict)
    withdrawn: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    kind: str  # given or withdrawn
    day: str
    count: int


def series(rows: list[tuple[str, str, str, int]]) -> list[Series]:
    """Daily counts by purpose from `consent.daily_counts` rows."""
    found: dict[str, Series] = {}
    for day, purpose, event, count in rows:
        entry = found.setdefault(purpose, Series(purpose))
        if event == "granted":
            entry.given[day] = entry.given.get(day, 0) + count
        elif event in ("withdrawn", "expired"):
            entry.withdrawn[day] = entry.withdrawn.get(day, 0) + count
    return [found[p] for p in sorted(found)]


def bars(data: Series, *, last_day: date, days: int) -> list[Bar]:
    """The chart's bars over the `days` ending on `last_day`, scaled to the busiest day."""
    step = (WIDTH - 2 * MARGIN) / days
    peak = max([*data.given.values(), *data.withdrawn.values(), 1])
    half = HEIGHT / 2 - MARGIN
    drawn = []
    for i in range(days):
        day = (last_day - timedelta(days=days - 1 - i)).isoformat()
        x = MARGIN + i * step + step * 0.1
        for kind, counts in (("given", data.given), ("withdrawn", data.withdrawn)):
            n = counts.get(day, 0)
            if not n:
                continue
            height = max(half * n / peak, 1.5)
            y = HEIGHT / 2 - height if kind == "given" else HEIGHT / 2
            drawn.append(Bar(round(x, 2), round(y, 2), round(step * 0.8, 2), round(height, 2),
                             kind, day, n))
    return drawn
