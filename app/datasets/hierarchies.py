"""Generalisation hierarchies: level 0 is the value as it is, each level above is coarser, the
last is `*` (nothing left). Every function maps (value, level) to the generalised value."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

SUPPRESSED = "*"
Generaliser = Callable[[Any, int], str]


def _date(value: Any, level: int) -> str:
    """Day, month, year, 5-year band, 10-year band, nothing."""
    text = str(value)
    if level == 0:
        return text
    if not re.fullmatch(r"\d{4}-\d{2}(-\d{2})?", text):
        return SUPPRESSED
    year = int(text[:4])
    if level == 1:
        return text[:7]
    if level == 2:
        return text[:4]
    if level in (3, 4):
        width = 5 if level == 3 else 10
        start = year - year % width
        return f"{start}-{start + width - 1}"
    return SUPPRESSED


def _age(value: Any, level: int) -> str:
    """Years, 5-year band, 10-year band, 20-year band, nothing."""
    try:
        age = int(value)
    except (TypeError, ValueError):
        return SUPPRESSED
    if level == 0:
        return str(age)
    if level <= 3:
        width = (5, 10, 20)[level - 1]
        start = age - age % width
        return f"{start}-{start + width - 1}"
    return SUPPRESSED


def _postcode(value: Any, level: int) -> str:
    """The code, then ever shorter prefixes (Chinese codes: province, area, district)."""
    text = str(value).strip()
    keep = (len(text), 4, 3, 2, 1, 0)[level] if level < 6 else 0
    if keep >= len(text):
        return text
    return text[:keep] + "*" * (len(text) - keep) if keep else SUPPRESSED


MUNICIPALITIES = ("北京市", "上海市", "天津市", "重庆市")
_ADMIN = re.compile(r"^(?P<province>.+?(?:省|自治区|特别行政区))?"
                    r"(?P<city>.+?(?:市|自治州|地区|盟))?(?P<district>.+?(?:区|县|旗))?")


def _address(value: Any, level: int) -> str:
    """Street address, district, city, province, nothing. Chinese addresses are cut at their
    administrative suffixes; others at their commas, from the end."""
    text = str(value).strip()
    if level == 0:
        return text
    if re.search(r"[\u4e00-\u9fff]", text):
        match = _ADMIN.match(text)
        parts = [match.group(name) or "" for name in ("province", "city", "district")] \
            if match else ["", "", ""]
        if not parts[0] and parts[1] in MUNICIPALITIES:
            parts[0] = parts[1]  # a municipality is its own province
        keep = {1: 3, 2: 2, 3: 1}.get(level, 0)
        shown = "".join(dict.fromkeys(parts[:keep]))  # a municipality is named once
        return shown or SUPPRESSED
    pieces = [p.strip() for p in text.split(",") if p.strip()]
    keep = len(pieces) - level
    return ", ".join(pieces[-keep:]) if keep > 0 and level < 4 else SUPPRESSED


def _category(value: Any, level: int) -> str:
    return str(value) if level == 0 else SUPPRESSED


HIERARCHY: dict[str, tuple[Generaliser, int]] = {  # generaliser, highest level
    "date": (_date, 5),
    "age": (_age, 4),
    "postcode": (_postcode, 5),
    "address": (_address, 4),
    "category": (_category, 1),
}


def generalise(kind: str, value: Any, level: int) -> str:
    if value is None or value == "":
        return SUPPRESSED
    function, top = HIERARCHY[kind]
    return function(value, min(level, top))


def top(kind: str) -> int:
    return HIERARCHY[kind][1]
