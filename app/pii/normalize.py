"""Normalise text before matching, keeping a map back to the original offsets.

Evasions this undoes: zero-width and other invisible characters, full-width and other
compatibility forms (NFKC: `１３８` -> `138`), Cyrillic and Greek letters that look like Latin
ones, and spelled-out e-mail addresses (`jane at example dot com`). Digits split by spaces or
hyphens are left to the recognizers, whose patterns allow separators and validate the digits.

Every character of the normalised text records the original span it came from, so a finding in
the normalised text maps back to offsets in the text exactly as the caller sent it.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

INVISIBLE = frozenset(
    "\u00ad\u180e\u200b\u200c\u200d\u200e\u200f\u2060\u2061\u2062\u2063\u2064\ufeff"
    "\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)

# Letters from other scripts that render like Latin ones (a subset of Unicode confusables).
CONFUSABLES = {
    "а": "a", "е": "e", "о": "o", "р": "p", "с": "c", "у": "y", "х": "x", "і": "i", "ј": "j",
    "ѕ": "s", "ԁ": "d", "ɡ": "g", "һ": "h", "ӏ": "l", "ո": "n", "ԛ": "q", "ԝ": "w", "ᴠ": "v",
    "А": "A", "В": "B", "Е": "E", "К": "K", "М": "M", "Н": "H", "О": "O", "Р": "P", "С": "C",
    "Т": "T", "Х": "X", "У": "Y", "І": "I", "Ј": "J", "Ѕ": "S",
    "α": "a", "ο": "o", "ν": "v", "ρ": "p", "τ": "t", "υ": "u", "ι": "i", "κ": "k",
    "Α": "A", "Β": "B", "Ε": "E", "Ζ": "Z", "Η": "H", "Ι": "I", "Κ": "K", "Μ": "M", "Ν": "N",
    "Ο": "O", "Ρ": "P", "Τ": "T", "Υ": "Y", "Χ": "X",
}

# Characters that folding changes even in NFKC text: text without them is left as it is.
_FOLDED = re.compile("[" + re.escape("".join(sorted(INVISIBLE | set(CONFUSABLES)))) +
                     "\ud800-\udfff]")

_OPEN, _CLOSE = r"[\[\(\{<]?", r"[\]\)\}>]?"
# At most three blanks on each side: an unbounded run backtracked quadratically ("x at y" and
# thousands of spaces took seconds, before any deadline check).
_S = r"\s{0,3}"
_AT = rf"{_S}{_OPEN}{_S}(?:at|AT|At){_S}{_CLOSE}{_S}"
_DOT = rf"{_S}{_OPEN}{_S}(?:dot|DOT|Dot){_S}{_CLOSE}{_S}"
SPELLED_EMAIL = re.compile(
    rf"(?<![A-Za-z0-9_.@])([A-Za-z0-9][A-Za-z0-9._%+-]*){_AT}([A-Za-z0-9-]+(?:{_DOT}[A-Za-z0-9-]+)*"
    rf"{_DOT}[A-Za-z]{{2,24}})(?![A-Za-z0-9_])"
)
_DOT_SPLIT = re.compile(_DOT)


@dataclass(frozen=True)
class Normalized:
    original: str
    text: str
    starts: tuple[int, ...]  # per normalised character: start of its source in the original
    ends: tuple[int, ...]  # per normalised character: end of its source in the original

    def original_span(self, start: int, end: int) -> tuple[int, int]:
        """Map [start, end) in the normalised text to the original text."""
        if end <= start:
            anchor = self.starts[start] if start < len(self.starts) else len(self.original)
            return anchor, anchor
        return self.starts[start], self.ends[end - 1]

    @property
    def changed(self) -> bool:
        return self.text != self.original


def _char_form(char: str) -> str:
    if "\ud800" <= char <= "\udfff":
        return "\ufffd"  # a lone surrogate (JSON allows them) would break the models
    if char in INVISIBLE:
        return ""
    mapped = CONFUSABLES.get(char)
    if mapped is not None:
        return mapped
    if char.isascii():
        return char
    return _nfkc_form(char)


def _nfkc_form(chars: str) -> str:
    """NFKC, then look-alikes mapped, invisible characters dropped and lone surrogates replaced."""
    folded = unicodedata.normalize("NFKC", chars)
    return "".join("\ufffd" if "\ud800" <= c <= "\udfff" else CONFUSABLES.get(c, c)
                   for c in folded if c not in INVISIBLE)


def normalize(text: str) -> Normalized:
    if "\\" not in text and (text.isascii() or (unicodedata.is_normalized("NFKC", text)
                                                and not _FOLDED.search(text))):
        base = Normalized(text, text, tuple(range(len(text))), tuple(range(1, len(text) + 1)))
    else:
        base = _fold(text)
    return _rewrite_spelled_emails(base)


_ESCAPES = {"n": "\n", "r": "\n", "t": " "}


def _fold(text: str) -> Normalized:
    """Character folding that also turns escaped line breaks (a literal backslash-n, as in
    JSON pasted into a ticket) into real ones, so that they separate names and lines."""
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    index = 0
    while index < len(text):
        char = text[index]
        if char == "\\" and index + 1 < len(text) and text[index + 1] in _ESCAPES:
            out.append(_ESCAPES[text[index + 1]])
            starts.append(index)
            ends.append(index + 2)
            index += 2
            continue
        end = index + 1
        while end < len(text) and unicodedata.combining(text[end]):
            end += 1  # a letter and its accents (decomposed text, as macOS writes it): one unit
        form = _char_form(char) if end == index + 1 else _nfkc_form(text[index:end])
        out.append(form)
        starts.extend([index] * len(form))
        ends.extend([end] * len(form))
        index = end
    return Normalized(text, "".join(out), tuple(starts), tuple(ends))


def _rewrite_spelled_emails(norm: Normalized) -> Normalized:
    lowered = norm.text.lower()
    if " at " not in lowered and "(at)" not in lowered and "[at]" not in lowered:
        return norm
    pieces: list[tuple[str, int, int]] = []  # (text, normalised start, normalised end)
    cursor = 0
    for match in SPELLED_EMAIL.finditer(norm.text):
        if "@" in match.group(0):
            continue
        pieces.append((norm.text[cursor:match.start()], cursor, match.start()))
        local_end = match.end(1)
        pieces.append((match.group(1), match.start(1), local_end))
        pieces.append(("@", local_end, match.start(2)))
        domain_start = match.start(2)
        position = domain_start
        for dot in _DOT_SPLIT.finditer(norm.text, domain_start, match.end(2)):
            pieces.append((norm.text[position:dot.start()], position, dot.start()))
            pieces.append((".", dot.start(), dot.end()))
            position = dot.end()
        pieces.append((norm.text[position:match.end(2)], position, match.end(2)))
        cursor = match.end(2)
    if not pieces:
        return norm
    pieces.append((norm.text[cursor:], cursor, len(norm.text)))
    out: list[str] = []
    starts: list[int] = []
    ends: list[int] = []
    for piece, start, end in pieces:
        if not piece:
            continue
        out.append(piece)
        if len(piece) == end - start and piece == norm.text[start:end]:
            starts.extend(norm.starts[start:end])
            ends.extend(norm.ends[start:end])
        else:  # a replacement ("@" or "."): stands for the whole spelled-out stretch
            starts.extend([norm.starts[start]] * len(piece))
            ends.extend([norm.ends[end - 1]] * len(piece))
    return Normalized(norm.original, "".join(out), tuple(starts), tuple(ends))
