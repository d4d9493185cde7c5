"""Choosing the language of a text by its script, for `language: auto`."""

from __future__ import annotations

import re

_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def han_count(text: str) -> int:
    return len(_HAN.findall(text))


def latin_word_count(text: str) -> int:
    return len(_LATIN_WORD.findall(text))


def detect_language(text: str) -> str:
    """`zh` when the text has Chinese characters in earnest, else `en`.

    Mixed text is analysed as Chinese, and its Latin-script words also go through English NER.
    """
    han = han_count(text)
    return "zh" if han and han >= min(4, latin_word_count(text) + 1) else "en"


_LINE = re.compile(r"[^\n]+")
_CAPS_WORD = re.compile(r"\b[A-Z][A-Z'’\-]+\b")
SMALL_WORDS = frozenset(
    "a an and as at be by for from in into is it of on or over the to up vs with".split())


def recase_shouting(text: str) -> str:
    """Lines written in capitals (news headlines, shouted messages) in ordinary case.

    An NER model trained on mixed-case text takes every capitalised word for a name, or none: it
    finds people and places in `JAPAN GET LUCKY WIN` only as `Japan Get Lucky Win`. The result is
    as long as the text, character for character, so every offset stays valid.
    """
    return _LINE.sub(_recase_line, text) if _has_caps_line(text) else text


def _has_caps_line(text: str) -> bool:
    return any(_is_shouting(line.group()) for line in _LINE.finditer(text))


def _is_shouting(line: str) -> bool:
    letters = [c for c in line if c.isascii() and c.isalpha()]
    return len(letters) >= 8 and sum(c.isupper() for c in letters) >= 0.8 * len(letters)


def _recase_line(line: re.Match[str]) -> str:
    if not _is_shouting(line.group()):
        return line.group()
    return _CAPS_WORD.sub(_recase_word, line.group())


def _recase_word(word: re.Match[str]) -> str:
    value = word.group()
    if value.lower() in SMALL_WORDS and word.start() > 0:
        return value.lower()
    if len(value) <= 3:  # US, UK, BBC: abbreviations stay as they are
        return value
    return value[0] + value[1:].lower()


_TOKEN = re.compile(r"\w+|[^\w\s]")
# What cannot be part of a name or a place: a lone letter, digits, underscores, punctuation.
_NOT_WORD = re.compile(r"(?<![^\W\d_])[^\W\d_](?![^\W\d_])|[\d_]+|[^\w\s]+")
MAX_TOKENS_PER_CHAR = 0.4  # English prose has about 0.2; tables and junk have up to 1


def ner_input(text: str) -> str:
    """What the English NER model reads for `text`: as long as the text, character for character.

    The model's cost is per token. Prose has a token for every four or five characters, but a
    score table or a run like `a-a-a-…` has one for every character, and a scan of 100,000 of
    those characters would take the model seconds. In such text only words of two or more
    letters reach the model (the rest becomes spaces): no name is shorter or made of digits.
    """
    text = recase_shouting(text)
    if len(_TOKEN.findall(text)) <= MAX_TOKENS_PER_CHAR * len(text):
        return text
    return _NOT_WORD.sub(lambda m: " " * len(m.group()), text)
