"""Choosing the language of a text by its script, for `language: auto`."""

from __future__ import annotations

import re

_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]")


def han_count(text: str) -> int:
    return len(_HAN.findall(text))


def latin_word_count(text: str) -> int:
    return len(_LATIN_WORD.findall(text))


_CAPITALISED = re.compile(r"(?<![A-Za-z])[A-Z][a-z]")


def worth_english_ner(text: str) -> bool:
    """Whether English NER could find a name or a place in `text`, a stretch of Chinese text:
    it has a capitalised Latin word (`Sarah`) or three Latin words or more.

    One word in capitals (`VIP`, `EA`) or in lower case (`bug`) alone is left to the Chinese
    model: English NER's findings on such words do not stand (`holds_in_chinese`).
    """
    return _CAPITALISED.search(text) is not None or latin_word_count(text) >= 3


# Chinese characters, CJK punctuation, and the fullwidth forms that are not letters or digits
_CHINESE_RUN = re.compile(
    r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uff0f\uff1a-\uff20\uff3b-\uff40"
    r"\uff5b-\uffef]+")


def latin_stretches(text: str) -> str:
    """What English NER reads of mixed Chinese text: each run of Chinese characters becomes a
    comma and spaces, as long as the run, so every offset stays valid.

    The English model reads a Chinese run as one unknown word, glued to the Latin word beside it
    (`客户John Smith来电` gives it `客户John` and `Smith来电`), and finds no name in
    `请联系 Sarah Johnson 处理退款`. With the runs as `, ` it reads `, John Smith, `: a clause
    boundary where the Chinese text had one, and the names between.
    """
    return _CHINESE_RUN.sub(lambda run: "," + " " * (len(run.group()) - 1), text)


def detect_language(text: str) -> str:
    """`zh` when the text has Chinese characters in earnest, else `en`.

    Mixed text is analysed as Chinese, and its Latin-script words also go through English NER.
    """
    han = han_count(text)
    return "zh" if han and han >= min(4, latin_word_count(text) + 1) else "en"


def holds_in_chinese(entity: str, value: str) -> bool:
    """Whether English NER's `entity` over `value`, a stretch of mixed Chinese text, stands.

    Read one word at a time between Chinese runs, the English model takes most capitalised words
    for names or places: on the Latin words of Chinese web text and social media (CLUENER2020 and
    Weibo NER, train splits) its one-word places were brands, games and studios (`EA`, `Valve`,
    `Wolfenstein`: 0 right of 95) and its one-word names in capitals acronyms (`CS`, `ESRB`: 1 of
    34). Names of two words or more (`Sarah Johnson`) and one-word names in ordinary case
    (`Emily`) stand; the Chinese model finds one-word places and handles itself.
    """
    words = _LATIN_WORD.findall(value)
    if len(words) != 1:
        return True
    return entity == "PERSON" and not words[0].isupper()


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
