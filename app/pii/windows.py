"""Cutting a text into the overlapping windows the recognizers read one at a time."""

from __future__ import annotations

from dataclasses import dataclass

WINDOW = 2_000  # characters a recognizer sees at once: bounds the cost of any pattern
OVERLAP = 200


@dataclass(frozen=True)
class Window:
    """A stretch of text analysed at once; it reports only what starts in the part it owns."""

    start: int
    end: int
    own_start: int
    own_end: int

    def owns(self, position: int) -> bool:
        return self.own_start <= position < self.own_end


def windows(text: str) -> list[Window]:
    """Overlapping windows of at most WINDOW characters, cut at a line or sentence end if any.

    Neighbours overlap by OVERLAP characters and split the overlap between them, so a finding
    shorter than half of it is reported whole, once.
    """
    if len(text) <= WINDOW:
        return [Window(0, len(text), 0, len(text))]
    cuts = []
    start = 0
    while len(text) - start > WINDOW:
        end = _cut(text, start + WINDOW // 2, start + WINDOW)
        cuts.append((start, end))
        start = end - OVERLAP
    cuts.append((start, len(text)))
    result = []
    for index, (start, end) in enumerate(cuts):
        own_start = 0 if index == 0 else start + OVERLAP // 2
        own_end = len(text) if index == len(cuts) - 1 else end - OVERLAP // 2
        result.append(Window(start, end, own_start, own_end))
    return result


def _cut(text: str, low: int, high: int) -> int:
    """Where to end a window: after the last line break, sentence end or space in [low, high).

    Looking back as far as half a window, a window ends inside a token (a long URL) only where
    the text has no space for 1,000 characters."""
    for breaks in ("\n", "。！？.!?；;", " \t，,、"):
        best = max(text.rfind(c, low, high) for c in breaks)
        if best >= low:
            return best + 1
    return high
