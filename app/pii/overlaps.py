"""Which of overlapping findings stands: the overlap rule of the engine."""

from __future__ import annotations

import bisect

from presidio_analyzer import RecognizerResult

NAMED_ENTITIES = frozenset({"PERSON", "LOCATION", "ORGANIZATION", "NRP", "DATE_TIME"})


def resolve_overlaps(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Keep the strongest of overlapping findings.

    An identifier (a match that passed a checksum or a strict format) beats a named entity of
    another type over the same characters, whatever the model's score: `2001:db8::1` is an IP
    address, not a date and an organisation. An identifier inside a longer one (the e-mail
    address in a URL) goes, so the whole URL is protected. Then the higher score wins, then the
    longer span.
    """
    identifiers = sorted((r for r in results if r.entity_type not in NAMED_ENTITIES),
                         key=lambda r: (r.start, -r.end))
    inside = set()  # an identifier within a longer one (the e-mail in a URL) goes with it
    reach = -1
    for result in identifiers:
        if result.end <= reach:
            inside.add(id(result))
        reach = max(reach, result.end)
    results = [r for r in results if id(r) not in inside]
    kept: list[RecognizerResult] = []  # disjoint, in text order
    starts: list[int] = []
    for result in sorted(results, key=lambda r: (r.entity_type in NAMED_ENTITIES, -r.score,
                                                 -(r.end - r.start), r.start)):
        at = bisect.bisect_left(starts, result.start)
        if (at and kept[at - 1].end > result.start) or \
                (at < len(kept) and kept[at].start < result.end):
            continue
        kept.insert(at, result)
        starts.insert(at, result.start)
    return kept
