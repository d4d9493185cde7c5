"""Presidio's recognizer unit-test cases as data, and how a case is judged (see the JSON files)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
Spans = list[tuple[int, int]]


@dataclass(frozen=True)
class Case:
    text: str
    entity: str
    count: int
    spans: tuple[tuple[int, int], ...]
    threshold: float
    source: str

    def passes(self, found: Iterable[tuple[int, int]]) -> bool:
        """The peer's check: as many findings as expected, the first ones at the given spans."""
        ordered = sorted(found)
        return len(ordered) == self.count and all(
            tuple(got) == want for got, want in zip(ordered, self.spans, strict=False))


def load_cases() -> list[Case]:
    cases = []
    for path in sorted(HERE.glob("*.json")):
        for raw in json.loads(path.read_text(encoding="utf-8"))["cases"]:
            cases.append(Case(text=raw["text"], entity=raw["entity"], count=raw["count"],
                              spans=tuple(tuple(s) for s in raw["spans"] or ()),
                              threshold=raw["threshold"], source=raw["source"]))
    return cases


def failures(cases: Iterable[Case], find: Callable[[Case], Spans]) -> list[tuple[Case, Spans]]:
    """Every case `find` gets wrong, with what it found."""
    wrong = []
    for case in cases:
        found = find(case)
        if not case.passes(found):
            wrong.append((case, found))
    return wrong


# Inputs that make a backtracking pattern run for a long time: every recognizer must read
# each of them in linear time.
ADVERSARIAL_INPUTS = {
    '"1." * 50000': "1." * 50000,
    '"a@" * 50000': "a@" * 50000,
    '"a." * 50000': "a." * 50000,
    '"http://" + "a." * 50000': "http://" + "a." * 50000,
    '"1" * 100000': "1" * 100000,
    '"13812345678 " * 8000': "13812345678 " * 8000,
    '"中" * 100000': "中" * 100000,
    '"1 " * 50000': "1 " * 50000,
    '"1:" * 50000': "1:" * 50000,
    '"x@a." * 25000': "x@a." * 25000,
    '"." * 100000': "." * 100000,
    '"a-" * 50000': "a-" * 50000,
}
