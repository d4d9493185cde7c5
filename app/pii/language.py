"""Choosing the language of a text by its script, for `language: auto`."""

from __future__ import annotations

import re

_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


def han_count(text: str) -> int:
    return sum(1 for c in text if "\u4e00" <= c <= "\u9fff" or "\u3400" <= c <= "\u4dbf")


def latin_word_count(text: str) -> int:
    return len(_LATIN_WORD.findall(text))


def detect_language(text: str) -> str:
    """`zh` when the text has Chinese characters in earnest, else `en`.

    Mixed text is analysed as Chinese, and its Latin-script words also go through English NER.
    """
    han = han_count(text)
    return "zh" if han and han >= min(4, latin_word_count(text) + 1) else "en"
