"""After the recognizers: correct labels, drop known false positives, and join the pieces of an
address; `refine` applies every rule, in order.

Spans here are in the normalised text; the engine maps them back to the original afterwards.
"""

from __future__ import annotations

import bisect
import re

import regex
from presidio_analyzer import RecognizerResult

from app.pii.recognizers.places import COMPETITOR_RECOGNIZER, COUNTRY_RECOGNIZER, DEMONYMS

# Abbreviations that spaCy's small model tags as names or organisations in forms and notes.
NOT_ENTITIES = frozenset(
    "ssn sin nin iban bic swift ceo cfo cto coo hq hr it id dob vat ein itin tin pin otp cvv "
    "atm usb pdf url ip faq ok eta asap fyi rsvp usd eur gbp cny rmb n/a tbd tba "
    "mr mrs ms dr patient email e-mail phone name address".split())
# A date that can identify someone has a month, a year, a day-month-year shape or a time.
_DATE_SHAPE = re.compile(
    r"\b(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\b|\b(?:1[5-9]|20)\d{2}\b|"
    r"\b\d{1,2}[/.\-]\d{1,2}[/.\-]\d{2,4}\b|\b\d{1,2}:\d{2}\b|年|月|日", re.IGNORECASE)
# What may stand between two pieces of one address: spaces, commas, line breaks (also escaped).
_GAP = re.compile(r"^(?:[ \t\r\n,;]|\\n|and)*$")
# After an address: a line or a comma-separated part that names a town, a region or a
# country (capitalised words, perhaps with a postcode), e.g. "\n Svratka\n Czech Republic 45098".
_PLACE_WORD = r"(?:\p{Lu}[\p{L}\p{M}'’\-]*|de|da|do|del|la|le|van|von|K)"
_TRAILING_PART = regex.compile(
    rf"(?:[ \t]*(?:\n|,)[ \t]*)+(?:{_PLACE_WORD}(?:[ ]+{_PLACE_WORD}){{0,3}})?"
    r"(?:[ ,]*(?:\d{4,6}|[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2}))?(?=[ \t]*(?:\n|,|$|[.?!]))")
_NUMBER_BEFORE = re.compile(r"(\d{1,6}[A-Za-z]?)(?:[ \t,]|\\n)*$")
# A postcode after a place; `BONN 1996-08-22` is a place and a date.
_POSTCODE_AFTER = re.compile(r"^(?:[ \t,]|\\n)*"
                             r"(\d{4,6}(?:-\d{4})?|[A-Z]{1,2}\d[A-Z\d]?[ ]?\d[A-Z]{2})(?![\w]|-\d)")


def refine(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """A text's findings after every rule here, in order: labels corrected, places preferred,
    teams in results tables, false positives dropped, adjacent places merged."""
    for result in results:
        relabel(text, result)
    prefer_places(text, results)
    teams_in_results(text, results)
    kept = join_hyphenated_names(text, [r for r in results if not is_false_positive(text, r)])
    return merge_locations(text, kept)


_HYPHENS = "-\u2010\u2011"
# A capitalised part of a name joined by a hyphen: `Anne-` before, `-Jones` after.
_PART_BEFORE = regex.compile(rf"(?<![\p{{L}}\p{{M}}\-])\p{{Lu}}[\p{{Ll}}\p{{M}}]+[{_HYPHENS}]$")
_PART_AFTER = regex.compile(rf"[{_HYPHENS}]\p{{Lu}}[\p{{Ll}}\p{{M}}]+(?![\p{{L}}\p{{M}}\-])")


def join_hyphenated_names(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """One PERSON for a name with a hyphen in it, which spaCy's tokenizer cuts
    (`Jean-Pierre Martin` as `Jean` and `Pierre Martin`, `Catherine Zeta-Jones` as `Catherine
    Zeta`): a mask would show the part left out."""
    people = sorted((r for r in results if r.entity_type == "PERSON"), key=lambda r: r.start)
    joined: list[RecognizerResult] = []
    for result in people:
        before = _PART_BEFORE.search(text, max(0, result.start - 30), result.start)
        if before:
            result.start = before.start()
        after = _PART_AFTER.match(text, result.end)
        if after:
            result.end = after.end()
        if joined and joined[-1].end + 1 == result.start and text[joined[-1].end] in _HYPHENS:
            joined[-1].end = result.end
            joined[-1].score = max(joined[-1].score, result.score)
        elif joined and joined[-1].start <= result.start and result.end <= joined[-1].end:
            joined[-1].score = max(joined[-1].score, result.score)
        else:
            joined.append(result)
    return [*(r for r in results if r.entity_type != "PERSON"), *joined]


def is_false_positive(text: str, result: RecognizerResult) -> bool:
    value = text[result.start:result.end]
    kind = result.entity_type
    if kind in ("PERSON", "ORGANIZATION", "LOCATION") and (
            value.lower().strip(".") in NOT_ENTITIES or not any(c.isalpha() for c in value)):
        return True  # SSN, IBAN, CEO, HQ, form labels or a run of emoji as names
    if kind == "PERSON" and not _HANDLE.match(value) and (any(c.isdigit() for c in value) or
                                                          "@" in value):
        return True  # relabel() has already cut a name off the score after it; e-mail parts
    if kind == "DATE_TIME" and not _DATE_SHAPE.search(value):
        return True  # "yesterday", "83", "144A": no date that could identify anyone
    return kind == "URL" and "@" in text[max(0, result.start - 1):result.start]


_FIRST_DIGIT = re.compile(r"\d")
_HANDLE = re.compile(r"^@\w{2,30}$")  # a social-media handle names a person
STREET_PREFIXES = frozenset("rua rue via viale calle avenida avda ul ulica piazza".split())
STREET_WORDS = frozenset(
    "street st road rd avenue ave lane ln drive dr boulevard blvd row way rua rue via calle "
    "avenida strasse straße gasse platz crescent close terrace court place square".split()
)


def relabel(text: str, result: RecognizerResult) -> None:
    """Correct spaCy's small English model where it is predictably wrong.

    A name never spans a line break, and a "name" with a street word in it is a street; so is
    an "organisation" that starts or ends like one (Pollen Crescent, Rue de Bouillon 316), while
    the Wall Street Journal stays a newspaper.
    """
    if result.entity_type in ("PERSON", "LOCATION", "ORGANIZATION"):
        value = text[result.start:result.end]
        trimmed = value.rstrip()
        if trimmed.endswith((",", ";", ":", "!", "?")) or trimmed[-2:-1].islower() and \
                trimmed.endswith("."):  # "Virginia Beach." ends at the word, "D.C." keeps its dot
            trimmed = trimmed[:-1]
        result.end = result.start + len(trimmed)
    if result.entity_type == "PERSON":
        line_break = text.find("\n", result.start, result.end)
        if line_break > result.start:
            result.end = len(text[result.start:line_break].rstrip()) + result.start
        digits = _FIRST_DIGIT.search(text, result.start, result.end)
        if digits and digits.start() > result.start and \
                not _HANDLE.match(text[result.start:result.end]):  # "Younis 4-95": the name
            result.end = len(text[result.start:digits.start()].rstrip()) + result.start
        if _words(text, result) & STREET_WORDS:
            result.entity_type = "LOCATION"
    elif result.entity_type == "ORGANIZATION":
        words = [w.lower().strip(".,") for w in text[result.start:result.end].split()
                 if not w.isdigit()]
        if words and (words[-1] in STREET_WORDS or words[0] in STREET_PREFIXES):
            result.entity_type = "LOCATION"


def _words(text: str, result: RecognizerResult) -> set[str]:
    return {w.lower().strip(".,") for w in text[result.start:result.end].split()}


def merge_locations(text: str, results: list[RecognizerResult]) -> list[RecognizerResult]:
    """One span per address: adjacent LOCATION pieces, house numbers and postcodes joined."""
    locations = sorted((r for r in results if r.entity_type == "LOCATION"),
                       key=lambda r: r.start)
    others = [r for r in results if r.entity_type != "LOCATION"]
    other_starts = sorted(r.start for r in others)
    merged: list[RecognizerResult] = []
    for result in locations:
        before = _NUMBER_BEFORE.search(text, max(0, result.start - 12), result.start)
        last_word = (text[result.start:result.end].split() or [""])[-1].lower().strip(".,")
        if before and not text[before.start() - 1:before.start()].isalnum() and \
                last_word in STREET_WORDS:  # 22 Baker Street; never "0 Paris St Germain"
            result.start = before.start(1)
        after = _POSTCODE_AFTER.match(text[result.end:result.end + 16])
        if after:
            result.end += after.end(1)
        while result.entity_type == "LOCATION":
            trailing = _TRAILING_PART.match(text, result.end)
            if trailing is None or not trailing.group().strip(" \t\n,") or \
                    bisect.bisect_left(other_starts, result.end) < \
                    bisect.bisect_left(other_starts, trailing.end()):
                break  # "Tripoli , Tadeusz Awdankiewicz": the next part is a name, not a town
            result.end = trailing.end()
        if merged and (result.start <= merged[-1].end or
                       _GAP.match(text[merged[-1].end:result.start])):
            last = merged[-1]
            last.end = max(last.end, result.end)
            last.score = max(last.score, result.score)
        else:
            merged.append(result)
    return [*others, *merged]


def prefer_places(text: str, results: list[RecognizerResult]) -> None:
    """A country name the model read as a person or an organisation over exactly the same
    characters (`Sri Lanka`, a national side) is a place, and a competitor listed with a
    country (`Meluawati (Indonesia)`) a person; a nationality read as a place is NRP."""
    sure = {(r.start, r.end): r.entity_type for r in results
            if recognizer_name(r) in (COUNTRY_RECOGNIZER, COMPETITOR_RECOGNIZER)}
    for result in results:
        if result.entity_type in ("PERSON", "ORGANIZATION", "NRP", "LOCATION") and \
                (result.start, result.end) in sure:
            result.entity_type = sure[(result.start, result.end)]
        elif result.entity_type == "LOCATION" and text[result.start:result.end] in DEMONYMS:
            result.entity_type = "NRP"


# A line of a results table or fixture list: names with two or more scores, or two names
# with `AT`/`v` between them (`HOUSTON 68 61 .527 1/2`, `Halifax 64 Leeds 24`, `DETROIT AT
# KANSAS CITY`). A place named there is a team, except the venue after `AT`; an address keeps
# one postcode (`Paris 75008`).
_NAME_PART = r"\p{Lu}[\p{L}.'’\-]*(?:[ ]+\p{Lu}[\p{L}.'’\-]*){0,3}"
_SCORES = r"[ ]+\d[\d.\-/]*(?:[ ]+[\d.\-/]+)*"
_RESULT_LINE = regex.compile(
    rf"[ \t]*(?:{_NAME_PART}{_SCORES}[ ]+{_NAME_PART}{_SCORES}|{_NAME_PART}[ ]+\d[\d.\-/]*"
    rf"(?:[ ]+[\d.\-/]+)+|{_NAME_PART}[ ]+(?:AT|v|vs\.?)[ ]+{_NAME_PART})[ ]*\.?[ \t]*")

_VENUE = regex.compile(r"[ ]AT[ ]")


def teams_in_results(text: str, results: list[RecognizerResult]) -> None:
    """A place on a line of a results table or fixture list is a team (an organisation)."""
    for result in results:
        if result.entity_type != "LOCATION":
            continue
        start = text.rfind("\n", 0, result.start) + 1
        end = text.find("\n", result.end)
        if _RESULT_LINE.fullmatch(text, start, len(text) if end < 0 else end) and \
                not _VENUE.search(text, start, result.start):  # `TORONTO AT CHICAGO`: a venue
            result.entity_type = "ORGANIZATION"


def recognizer_name(result: RecognizerResult) -> str:
    return str((result.recognition_metadata or {}).get(RecognizerResult.RECOGNIZER_NAME_KEY, ""))
