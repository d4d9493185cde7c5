"""E-mail addresses and Chinese phone numbers.

An e-mail address may be internationalised (RFC 6531: `用户@例子.中国`, `user@bücher.de`); its
domain must end in a TLD of the public-suffix list. In CJK text nothing separates the address
from the prose around it, so a leading context word (邮箱) is cut from the local part and the
prose after a CJK TLD (例子.中国请回复) from the domain.
"""

from __future__ import annotations

from collections.abc import Iterator

import regex
from presidio_analyzer import EntityRecognizer

from app.pii.recognizers.base import (
    NOT_BEFORE_ALNUM,
    PatternUnit,
    Span,
    SpanRecognizer,
    digits_only,
)
from app.pii.recognizers.domains import cut_tld, valid_host

_LOCAL_CHAR = r"[\p{L}\p{N}_%+\-]"
# Possessive and bounded: a run of local-part characters is read once, whatever follows it.
EMAIL = regex.compile(
    rf"(?<![\p{{L}}\p{{N}}._%+\-]){_LOCAL_CHAR}(?:[\p{{L}}\p{{N}}._%+\-]{{0,63}}+)"
    r"@([\p{L}\p{N}\-]++(?:\.[\p{L}\p{N}\-]++)++)", regex.VERSION1)
LEADING_CONTEXT = regex.compile(
    r"^(?:(?:电子)?(?:邮箱|邮件|电邮|信箱)(?:地址)?|地址|联系)(?:是|为|：)?", regex.VERSION1)
LATIN_TAIL = regex.compile(r"(?<=\p{Han})[A-Za-z0-9][A-Za-z0-9._%+\-]*$", regex.VERSION1)
EMAIL_CONTEXT = ("email", "e-mail", "mail", "邮箱", "邮件", "电邮")
PHONE_CONTEXT = ("手机", "电话", "联系", "致电", "座机", "号码", "来电", "拨打", "微信",
                 "phone", "mobile", "tel", "call", "cell", "fax", "whatsapp")


class EmailRecognizer(SpanRecognizer):
    def __init__(self, language: str):
        super().__init__(name="EmailRecognizer", entity="EMAIL_ADDRESS", language=language,
                         context=EMAIL_CONTEXT)

    def find(self, text: str) -> Iterator[Span]:
        for match in EMAIL.finditer(text):
            span = email_span(text, match)
            if span is not None:
                yield span[0], span[1], 1.0


def email_span(text: str, match: regex.Match[str]) -> tuple[int, int] | None:
    start = match.start()
    local = text[start:match.start(1) - 1]
    if not local.isascii():
        latin_tail = LATIN_TAIL.search(local)
        if latin_tail and latin_tail.start() > 0:  # 联系人张三zhang@...: the address is ASCII
            start += latin_tail.start()
            local = latin_tail.group()
        cut = LEADING_CONTEXT.match(local)
        if cut and cut.end() < len(local):
            start += cut.end()
            local = local[cut.end():]
    domain = cut_tld(match.group(1)).rstrip("-")
    if local.startswith(".") or local.endswith(".") or ".." in local or \
            not valid_host(domain):
        return None
    return start, match.start(1) + len(domain)


def _cn_mobile(value: str) -> float | None:
    digits = digits_only(value)
    score = 0.75
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    elif digits.startswith("0") and len(digits) == 12:
        digits, score = digits[1:], 0.55  # the 0 dialled before a mobile from another city
    return score if len(digits) == 11 and digits[0] == "1" and digits[1] in "3456789" else None


def _cn_landline(value: str) -> float | None:
    number = value.rsplit("-", 1)[0] if value.count("-") == 2 else value
    return 0.35 if 10 <= len(digits_only(number)) <= 12 else None


def recognizers(language: str) -> list[EntityRecognizer]:
    return [
        EmailRecognizer(language),
        PatternUnit(
            name="CnMobileRecognizer", entity="PHONE_NUMBER", language=language,
            patterns=[r"(?<![0-9A-Za-z+])(?:(?:\+|00)86[ -]?|0)?1[3-9][0-9](?:[ -]?[0-9]){8}"
                      + NOT_BEFORE_ALNUM],
            score=_cn_mobile, context=PHONE_CONTEXT),
        PatternUnit(
            name="CnLandlineRecognizer", entity="PHONE_NUMBER", language=language,
            patterns=[r"(?<![0-9A-Za-z])(?:\(0[0-9]{2,3}\)|0[0-9]{2,3}[ -])[0-9]{7,8}"
                      r"(?:-[0-9]{1,4})?" + NOT_BEFORE_ALNUM],  # an extension: 021-22033212-123
            score=_cn_landline, context=PHONE_CONTEXT),
    ]
