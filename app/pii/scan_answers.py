"""What a scan helper may answer (app.pii.scan_process): each part of an answer is checked
against the request before any of it is used, so that a helper that is broken, or taken over,
can neither put malformed results into the findings nor text into an error message."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from app.pii.scan_process import Pending


class HelperFailed(Exception):
    """The helper died, could not be written to, or answered something malformed."""


def checked(pending: Pending, received: int, part: Any) -> list[Any]:
    """The results of one part of an answer, if they are what was asked for; HelperFailed if
    not (never let a malformed answer reach the findings, nor text reach an error message)."""
    if not isinstance(part, dict) or not isinstance(part.get("results"), list) \
            or not isinstance(part.get("last"), bool):
        raise HelperFailed("answered a message of the wrong shape")
    if part.get("id") != pending.id:  # an answer out of turn: every later one would be too
        raise HelperFailed("answered another request than the one sent")
    results: list[Any] = part["results"]
    if not results:  # no progress: a helper sending these forever would never look stuck
        raise HelperFailed("answered a part without results")
    texts = pending.order[received:received + len(results)]
    if len(texts) != len(results) or part["last"] != (received + len(results) == len(
            pending.order)):
        raise HelperFailed("answered for another number of texts than were sent")
    for index, (text, result) in enumerate(zip(texts, results, strict=True), received):
        if not isinstance(result, list) or not (
                entities_fit(text, result) if pending.kind == "ner" else
                tags_fit(text, result) if pending.kind == "tag" else
                findings_fit(text, pending.windows[index], pending.types, pending.threshold,
                              result)):
            raise HelperFailed("answered results that do not fit the texts sent")
    return results


def entities_fit(text: str, entities: list[Any]) -> bool:
    """Entities as a document holds them: labelled, inside the text, in order, none
    overlapping another (spaCy refuses overlapping entities)."""
    end = 0
    for entity in entities:
        if not (isinstance(entity, list) and len(entity) == 3 and type(entity[0]) is int
                and type(entity[1]) is int and isinstance(entity[2], str) and entity[2]
                and end <= entity[0] < entity[1] <= len(text)):
            return False
        end = entity[1]
    return True


def findings_fit(text: str, window: tuple[int, int], types: frozenset[str], threshold: float,
                  findings: list[Any]) -> bool:
    """Findings as a window's analysis gives them: [start, end, type, score, recognizer],
    inside the text, starting in the part the window owns, of a type the scan asked for,
    scored from its threshold to 1."""
    own_start, own_end = window
    for finding in findings:
        if not (isinstance(finding, list) and len(finding) == 5
                and type(finding[0]) is int and type(finding[1]) is int
                and own_start <= finding[0] < own_end and finding[0] < finding[1] <= len(text)
                and finding[2] in types and type(finding[3]) is float
                and threshold <= finding[3] <= 1.0 and isinstance(finding[4], str)):
            return False
    return True


def tags_fit(sentence: str, tags: list[Any]) -> bool:
    from app.pii.zh_model import tagger

    count = tagger().tag_count
    return len(tags) == len(sentence) and all(type(t) is int and 0 <= t < count for t in tags)
