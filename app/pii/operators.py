"""Protection operators: small named functions, referenced by name from policy and requests.

Each takes the found value, its entity type and the operator's parameters, and returns what
replaces the value. `hash` is keyed HMAC-SHA256 only: an unkeyed hash of a phone number or an ID
is reversed by enumerating the possible values. `tokenize` and `encrypt` protect the value
under the data subject's key: the caller passes `protect`, bound to the subject and record
(see app.keys.fields.encrypt_field); without it they fail with a clear error.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from app.clock import utcnow
from app.pii.checksums import resident_id_birth_date
from app.pii.recognizers.cn_entities import COMPOUND_SURNAMES


@dataclass(frozen=True)
class OperatorContext:
    """What operators may need beyond the value: keys, and the time for age ranges."""

    hash_key: bytes | None = field(default=None, repr=False)
    today: date | None = None
    protect: Callable[[str, str], str] | None = field(default=None, repr=False)


class OperatorError(ValueError):
    """An operator cannot be applied as configured (missing key, bad parameter)."""


Operator = Callable[[str, str, dict[str, Any], OperatorContext], str]
REGISTRY: dict[str, Operator] = {}


def register(name: str, operator: Operator) -> None:
    REGISTRY[name] = operator


def apply(name: str, value: str, entity: str, params: dict[str, Any],
          context: OperatorContext) -> str:
    try:
        operator = REGISTRY[name]
    except KeyError:
        raise OperatorError(f"unknown operator {name!r}; supported: "
                            f"{', '.join(sorted(REGISTRY))}") from None
    return operator(value, entity, params, context)


def redact(value: str, entity: str, params: dict[str, Any], context: OperatorContext) -> str:
    return ""


def replace(value: str, entity: str, params: dict[str, Any], context: OperatorContext) -> str:
    return str(params.get("new_value") or f"<{entity}>")


def _mask_chars(value: str, keep_start: int, keep_end: int, char: str,
                counts: Callable[[str], bool] = str.isalnum) -> str:
    """Mask the characters `counts` selects, except the first and last ones to keep."""
    positions = [i for i, c in enumerate(value) if counts(c)]
    masked = set(positions[keep_start:len(positions) - keep_end if keep_end else None])
    return "".join(char if i in masked else c for i, c in enumerate(value))


def _mask_name(value: str, char: str) -> str:
    if any("\u4e00" <= c <= "\u9fff" for c in value):
        surname = 2 if value[:2] in COMPOUND_SURNAMES else 1
        return value[:surname] + char * (len(value) - surname)
    # Latin script: initials at most (J*** S****); a surname is as identifying as a given name.
    # Invisible characters and accents do not start a word (J\u200bohn, E\u0301mile), an
    # apostrophe does not either (O'Brien), and digits are masked like letters.
    out, in_word = [], False
    for c in value:
        if unicodedata.combining(c) or unicodedata.category(c) == "Cf":
            out.append(c if not in_word else "")
            continue
        if c.isalnum():
            out.append(char if in_word else c)
            in_word = True
        else:
            out.append(c)
            in_word = in_word and c in "'’"
    return "".join(out)


def _mask_email(value: str, char: str) -> str:
    local, at, domain = value.partition("@")
    return (local[:1] + char * 3 + at + domain) if at else _mask_chars(value, 1, 0, char)


_DIGIT_GROUP = re.compile(r"\d+")


def _mask_phone(value: str, char: str) -> str:
    digits = "".join(str(unicodedata.digit(c)) for c in value if c.isdigit())
    stripped = value.strip().lstrip("(（")  # (+852) 5123 4567
    groups = _DIGIT_GROUP.findall(value)
    if stripped.startswith(("+86", "0086")):
        national = digits[2:] if stripped.startswith("+") else digits[4:]
    elif stripped.startswith("+") or (len(groups) > 1 and groups[0] == "1"):
        national = ""  # another country (1-415-555-0132): keep only the last four digits
    else:
        national = digits
    if len(national) == 11 and national[0] == "1" and national[1] in "3456789":
        return national[:3] + char * 4 + national[7:]  # mainland mobile: 138****5678
    return _mask_chars(value, 0, 4, char, str.isdigit)


# A district, county or banner: at most four characters after the province or city (南山区,
# 浦东新区), never the 区 of an estate, a community, a park or a campus (阳光花园小区, 东三区
# of 天通苑东三区), nor a street or village named after one (红旗街, 县前街).
_DISTRICT = re.compile(
    r"^(?:.*?[省市州盟])?[^\W\d_]{1,4}?(?<![小社园景校厂矿片街])(?:区|县|旗)(?![街路村道巷])")
_CITY = re.compile(r"^.*?市")


def _mask_location(value: str, char: str) -> str:
    cut = _DISTRICT.match(value) or _CITY.match(value)
    if cut and cut.end() < len(value):  # Chinese address: keep down to the district
        return cut.group() + char * 3
    head, sep, tail = value.rpartition(",")
    if sep and not any(c.isdigit() for c in tail):  # the town after the street, not a flat
        return char * 3 + sep + tail
    return char * 3


def mask(value: str, entity: str, params: dict[str, Any], context: OperatorContext) -> str:
    char = str(params.get("masking_char") or "*")[:1]
    if entity in ("CN_RESIDENT_ID", "CREDIT_CARD", "CN_BANK_CARD", "IBAN_CODE"):
        return _mask_chars(value, 6, 4, char)
    if entity == "PHONE_NUMBER":
        return _mask_phone(value, char)
    if entity == "PERSON":
        return _mask_name(value, char)
    if entity == "EMAIL_ADDRESS":
        return _mask_email(value, char)
    if entity == "LOCATION":
        return _mask_location(value, char)
    return _mask_chars(value, 1, 1, char) if len(value) > 2 else char * len(value)


_DATE = re.compile(r"(\d{4})[-/.年](\d{1,2})(?:[-/.月](\d{1,2})日?)?")


def _age_range(born: date, today: date, width: int) -> str:
    age = today.year - born.year - ((today.month, today.day) < (born.month, born.day))
    low = age // width * width
    return f"{low}-{low + width}"


def generalize(value: str, entity: str, params: dict[str, Any], context: OperatorContext) -> str:
    """Birth dates and ages to a range, dates to year or month, postcodes to a prefix."""
    level = params.get("level", "range")
    width = int(params.get("width", 5))
    today = context.today or utcnow().date()
    if entity == "CN_RESIDENT_ID":
        born = resident_id_birth_date(value)
        if born is None:
            raise OperatorError("not a resident ID with a birth date")
        return _age_range(born, today, width)
    stripped = value.strip().rstrip("岁")
    if stripped.isdigit() and len(stripped) <= 3:  # an age
        low = int(stripped) // width * width
        return f"{low}-{low + width}"
    if stripped.isdigit():  # a postcode: keep a prefix
        keep = int(params.get("keep", 3))
        return stripped[:keep] + "*" * (len(stripped) - keep)
    found = _DATE.search(value)
    if found is None:
        raise OperatorError(f"cannot generalise a {entity} value of this form")
    year, month = int(found.group(1)), int(found.group(2))
    if level == "year":
        return str(year)
    if level == "month":
        return f"{year:04d}-{month:02d}"
    born = date(year, month, int(found.group(3) or 1))
    return _age_range(born, today, width)


def hash_value(value: str, entity: str, params: dict[str, Any],
               context: OperatorContext) -> str:
    if not context.hash_key:
        raise OperatorError("the hash operator needs a key; an unkeyed hash is refused")
    return hmac.new(context.hash_key, value.encode(), hashlib.sha256).hexdigest()


def protect(value: str, entity: str, params: dict[str, Any], context: OperatorContext) -> str:
    """A ciphertext under the subject's data key, bound to its record and field."""
    if context.protect is None:
        raise OperatorError("encrypt and tokenize need the subject's key: call them where the "
                            "subject is known (the records API, or /v1/protect)")
    return context.protect(value, entity)


for _name, _operator in {"redact": redact, "replace": replace, "mask": mask,
                         "generalize": generalize, "hash": hash_value,
                         "tokenize": protect, "encrypt": protect}.items():
    register(_name, _operator)
