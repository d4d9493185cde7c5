"""Mainland Chinese identifiers: resident ID, bank card, USCC, passport, permits, plates."""

from __future__ import annotations

import regex

from app.pii.checksums import (
    luhn_valid,
    uscc_check_valid,
    valid_old_resident_id,
    valid_resident_id,
    valid_uscc,
)
from app.pii.recognizers.base import (
    NOT_AFTER_ALNUM,
    NOT_BEFORE_ALNUM,
    SEP,
    PatternUnit,
    Scorer,
    digits_only,
)

ID_CONTEXT = ("身份证", "身份证号", "证件号", "公民身份", "居民身份", "ID", "identity")
CARD_CONTEXT = ("银行卡", "卡号", "借记卡", "信用卡", "储蓄卡", "银联", "账号", "账户", "开户",
                "card", "account")
PASSPORT_CONTEXT = ("护照", "passport")
PERMIT_CONTEXT = ("通行证", "回乡证", "港澳", "往来内地")
PLATE_CONTEXT = ("车牌", "车牌号", "牌照", "号牌", "车辆", "plate")
USCC_CONTEXT = ("信用代码", "统一社会信用代码", "营业执照", "税号", "USCC")

USCC_CHAR = "[0-9A-HJ-NPQRTUWXY]"
PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"


def _resident_id(value: str) -> float | None:
    return 1.0 if valid_resident_id(digits_only(value)) else None


def _old_resident_id(value: str) -> float | None:
    return 0.6 if valid_old_resident_id(digits_only(value)) else None


def _bank_card(value: str) -> float | None:
    """UnionPay cards (prefix 62), and with a context word any Luhn-valid card number: Chinese
    banks also issue cards on other prefixes (9558...). Visa, Mastercard and the other
    networks score higher as CREDIT_CARD."""
    digits = digits_only(value)
    if not 16 <= len(digits) <= 19:
        return None
    if digits.startswith("62"):
        # Some UnionPay cards are reported not to pass Luhn: those need context too.
        return 0.8 if luhn_valid(digits) else 0.3
    return 0.3 if luhn_valid(digits) else None


def _uscc(value: str) -> float | None:
    value = digits_only(value)
    if valid_uscc(value):
        return 1.0
    # Some codes issued in the pilot years carry an organisation code that fails GB 11714
    # (911101005JLR20JR60): with its own check character alone, a code needs a context word.
    return 0.3 if uscc_check_valid(value) else None


def _needs_context(score: float) -> Scorer:
    return lambda value: score


def recognizers(language: str) -> list[PatternUnit]:
    lead, tail = NOT_AFTER_ALNUM, NOT_BEFORE_ALNUM
    return [
        PatternUnit(
            name="CnResidentIdRecognizer", entity="CN_RESIDENT_ID", language=language,
            patterns=[rf"{lead}[1-9]\d(?:{SEP}\d){{15}}{SEP}[\dXx]{tail}"],
            score=_resident_id, context=ID_CONTEXT),
        PatternUnit(
            name="CnOldResidentIdRecognizer", entity="CN_RESIDENT_ID", language=language,
            patterns=[rf"{lead}[1-8]\d(?:{SEP}\d){{13}}{tail}"], score=_old_resident_id,
            context=ID_CONTEXT),
        PatternUnit(
            name="CnBankCardRecognizer", entity="CN_BANK_CARD", language=language,
            patterns=[rf"{lead}\d(?:{SEP}\d){{15,18}}{tail}"], score=_bank_card,
            context=CARD_CONTEXT),
        PatternUnit(
            name="CnUsccRecognizer", entity="CN_USCC", language=language,
            patterns=[rf"{lead}{USCC_CHAR}{SEP}{USCC_CHAR}(?:{SEP}\d){{6}}(?:{SEP}{USCC_CHAR}){{10}}"
                      rf"{tail}"],
            score=_uscc, context=USCC_CONTEXT),
        PatternUnit(
            name="CnPassportRecognizer", entity="CN_PASSPORT", language=language,
            patterns=[rf"{lead}[EGK]{SEP}\d(?:{SEP}\d){{7}}{tail}",  # ordinary, HK SAR
                      # E + letter: ordinary; DE SE PE: diplomatic and service; K H M + letter:
                      # Hong Kong and Macau SAR passports
                      rf"{lead}(?:[EKHM][A-HJ-NP-Z]|[DSP]E){SEP}\d(?:{SEP}\d){{6}}{tail}"],
            score=_needs_context(0.3), context=PASSPORT_CONTEXT, flags=regex.IGNORECASE),
        PatternUnit(
            name="CnHkMacauPermitRecognizer", entity="CN_HK_MACAU_PERMIT", language=language,
            patterns=[rf"{lead}[HM]{SEP}\d(?:{SEP}\d){{7}}(?:{SEP}\d{SEP}\d)?{tail}"],
            score=_needs_context(0.3), context=PERMIT_CONTEXT, flags=regex.IGNORECASE),
        PatternUnit(
            name="CnLicensePlateRecognizer", entity="CN_LICENSE_PLATE", language=language,
            patterns=[rf"[{PROVINCES}][A-HJ-NP-Z][·・ ]?[A-HJ-NP-Z0-9]{{5,6}}{tail}",
                      # learner, police, Hong Kong/Macau, trailer, test plates; consulates
                      rf"[{PROVINCES}][A-HJ-NP-Z][A-HJ-NP-Z0-9]{{4}}[学警港澳挂试超]",
                      rf"[{PROVINCES}]\d{{5}}领"],
            score=_needs_context(0.35), context=PLATE_CONTEXT),
    ]
