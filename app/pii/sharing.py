"""What a long scan gives the helper process (app.pii.scan_process) to read, and how its answers
come back into the scan.

Of a long English text, the helper analyses the later LENT_SHARE of the windows whole (model,
recognizers and context, exactly as this process would) and answers their findings, while this
process analyses the rest. The helper is this process's own child, running the same code: its
findings are checked for their shape, place, type and score, not recomputed, so what it
leaves out is left out. The model is about three quarters of a window's cost (2.0-2.7 of
2.6-3.6 s of CPU on 100,000 characters of prose), so lending only the model's part, as
before, left this process the larger share: the recognizers of every window, and rebuilding
the documents the helper read. English stretches of Chinese text still lend only the model's
part ("ner"), and Chinese text every other sentence ("tag"): the windows of those read the
Chinese model's words of the whole text.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from presidio_analyzer import RecognizerResult

from app.pii.deadline import Deadline
from app.pii.refine import recognizer_name
from app.pii.scan_process import Pending, ScanProcess

LENT_SHARE = 0.5  # of a long scan's English windows, analysed whole by the helper process
WindowKey = tuple[str, int, int]  # a window's text and the part of it that it owns


def lend_windows(helper: ScanProcess | None, windows: dict[int, WindowKey], *,
                 entities: Sequence[str] | None, threshold: float,
                 types: frozenset[str]) -> tuple[dict[int, WindowKey], Pending | None]:
    """Lend the later LENT_SHARE of the distinct `windows` to the helper, to be analysed
    there with the scan's `entities` and `threshold`. The windows lent, by their places in
    the scan, and the helper's pending answer; none if the windows are too few for the
    helper or it cannot take them now."""
    unique = list(dict.fromkeys(windows.values()))
    if helper is None or sum(len(text) for text, _, _ in unique) < helper.min_chars:
        return {}, None
    lend = unique[len(unique) - int(len(unique) * LENT_SHARE):]
    pending = helper.submit("analyze", [text for text, _, _ in lend],
                            windows=[(a, b) for _, a, b in lend], entities=entities,
                            threshold=threshold, types=types)
    if pending is None:
        return {}, None
    chosen = set(lend)
    return {p: key for p, key in windows.items() if key in chosen}, pending


def lend_ner(helper: ScanProcess | None, texts: Iterable[str]) -> Pending | None:
    """Send the later three fifths of a long scan's English windows to the helper's model, if
    any: this process reads the rest and analyses every window, the helper's as they come."""
    unique = list(dict.fromkeys(texts))
    if helper is None or sum(map(len, unique)) < helper.min_chars:
        return None
    return helper.submit("ner", unique[len(unique) * 2 // 5:])


def helped(pending: Pending | None, keys: Sequence[Any],
           deadline: Deadline) -> dict[Any, Any] | None:
    """The helper's answers for `keys`, or None: read them here."""
    if pending is None or not keys:
        return None
    try:
        return pending.get(keys, deadline.remaining())
    except TimeoutError:
        deadline.check()
        return None  # no deadline, and the helper is stuck


def answered_windows(pending: Pending | None,
                     keys: Sequence[WindowKey]) -> dict[WindowKey, list[list[Any]]]:
    """What a helper that failed did answer, of the lent windows `keys`."""
    received = pending.received() if pending is not None else {}
    return {key: received[key] for key in keys if key in received}


def as_answer(results: Sequence[RecognizerResult], *, start: int = 0) -> list[list[Any]]:
    """A window's findings as the helper answers them, at their places in the window
    (`start`: the window's in the text)."""
    return [[r.start - start, r.end - start, r.entity_type, float(r.score), recognizer_name(r)]
            for r in results]


def from_answer(answer: Sequence[Sequence[Any]], start: int) -> list[RecognizerResult]:
    """A lent window's findings, as new objects (the rules after the recognizers may change
    them), at their places in the text (`start`: the window's)."""
    return [RecognizerResult(kind, begin + start, end + start, score,
                             recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: name})
            for begin, end, kind, score, name in answer]
