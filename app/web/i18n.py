"""Chinese and English: the `pgw_lang` cookie (the page's switch) first, then Accept-Language.
Catalogues are JSON files beside this module, one per language, the same keys in each."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import Request

LANGUAGES = ("en", "zh")
COOKIE = "pgw_lang"
_HERE = Path(__file__).parent / "locales"


@cache
def catalogue(language: str) -> dict[str, str]:
    loaded: dict[str, str] = json.loads((_HERE / f"{language}.json").read_text("utf-8"))
    return loaded


def negotiate(header: str, offered: tuple[str, ...] | list[str]) -> str | None:
    """The first of `offered` by the weights of an Accept-Language header (at most its first
    20 entries), or None."""
    ranked = []
    for part in header.split(",")[:20]:
        tag, _, params = part.strip().partition(";")
        weight = 1.0
        if params.strip().startswith("q="):
            try:
                weight = float(params.strip()[2:])
            except ValueError:
                continue
        ranked.append((weight, tag.strip().lower().split("-")[0]))
    for _, tag in sorted(ranked, key=lambda r: -r[0]):
        if tag in offered:
            return tag
    return None


def language(request: Request) -> str:
    chosen = request.cookies.get(COOKIE)
    if chosen in LANGUAGES:
        return str(chosen)
    return negotiate(request.headers.get("accept-language", ""), LANGUAGES) or "en"


def translator(language: str) -> Callable[..., str]:
    words, fallback = catalogue(language), catalogue("en")

    def t(key: str, **values: Any) -> str:
        text = words.get(key) or fallback.get(key) or key
        return text.format(**values) if values else text

    return t
