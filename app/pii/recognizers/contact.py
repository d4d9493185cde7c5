"""E-mail addresses and phone numbers. E-mail validation needs no public-suffix list."""

from __future__ import annotations

from app.pii.recognizers.base import NOT_BEFORE_ALNUM, PatternUnit, digits_only

EMAIL_PATTERN = (
    r"(?<![A-Za-z0-9_.%+-])[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}(?![A-Za-z0-9_-])"
)
PHONE_CONTEXT = ("手机", "电话", "联系", "致电", "座机", "号码", "来电", "拨打", "微信",
                 "phone", "mobile", "tel", "call", "cell", "fax", "whatsapp", "number")


def _email(value: str) -> float | None:
    local, _, domain = value.rpartition("@")
    if ".." in local or local.endswith(".") or ".." in domain:
        return None
    return 1.0


def _cn_mobile(value: str) -> float | None:
    digits = digits_only(value)
    if digits.startswith("0086"):
        digits = digits[4:]
    elif digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    return 0.75 if len(digits) == 11 and digits[0] == "1" and digits[1] in "3456789" else None


def _cn_landline(value: str) -> float | None:
    return 0.35 if 10 <= len(digits_only(value)) <= 12 else None


def recognizers(language: str) -> list[PatternUnit]:
    return [
        PatternUnit(name="EmailRecognizer", entity="EMAIL_ADDRESS", language=language,
                    patterns=[EMAIL_PATTERN], score=_email),
        PatternUnit(
            name="CnMobileRecognizer", entity="PHONE_NUMBER", language=language,
            patterns=[r"(?<![0-9A-Za-z+])(?:(?:\+|00)86[ -]?)?1[3-9]\d(?:[ -]?\d){8}"
                      + NOT_BEFORE_ALNUM],
            score=_cn_mobile, context=PHONE_CONTEXT),
        PatternUnit(
            name="CnLandlineRecognizer", entity="PHONE_NUMBER", language=language,
            patterns=[r"(?<![0-9A-Za-z])(?:\(0\d{2,3}\)|0\d{2,3}[ -])\d{7,8}" + NOT_BEFORE_ALNUM],
            score=_cn_landline, context=PHONE_CONTEXT),
    ]
