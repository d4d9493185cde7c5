"""Mainland Chinese identifiers: resident ID, bank card, USCC, passport, permits, plates."""

from __future__ import annotations

from app.pii.checksums import luhn_valid, valid_old_resident_id, valid_resident_id, valid_uscc
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

PROVINCES = "京津沪渝冀豫云辽黑湘皖鲁新苏浙赣鄂桂甘晋蒙陕吉闽贵粤青藏川宁琼"


def _resident_id(value: str) -> float | None:
    return 1.0 if valid_resident_id(digits_only(value)) else None


def _old_resident_id(value: str) -> float | None:
    return 0.6 if valid_old_resident_id(digits_only(value)) else None


def _bank_card(value: str) -> float | None:
    """UnionPay cards (prefix 62); other card networks are CREDIT_CARD."""
    digits = digits_only(value)
    if not 16 <= len(digits) <= 19 or not digits.startswith("62"):
        return None
    # Some UnionPay cards are reported not to pass Luhn: those need context to be reported.
    return 0.8 if luhn_valid(digits) else 0.3


def _uscc(value: str) -> float | None:
    return 1.0 if valid_uscc(value) else None


def _needs_context(score: float) -> Scorer:
    return lambda value: score


def recognizers(language: str) -> list[PatternUnit]:
    lead, tail = NOT_AFTER_ALNUM, NOT_BEFORE_ALNUM
    return [
        PatternUnit(
            name="CnResidentIdRecognizer", entity="CN_RESIDENT_ID", language=language,
            patterns=[rf"{lead}[1-8]\d(?:{SEP}\d){{15}}{SEP}[\dXx]{tail}"],
            score=_resident_id, context=ID_CONTEXT),
        PatternUnit(
            name="CnOldResidentIdRecognizer", entity="CN_RESIDENT_ID", language=language,
            patterns=[rf"{lead}[1-8]\d(?:{SEP}\d){{13}}{tail}"], score=_old_resident_id,
            context=ID_CONTEXT),
        PatternUnit(
            name="CnBankCardRecognizer", entity="CN_BANK_CARD", language=language,
            patterns=[rf"{lead}62(?:{SEP}\d){{14,17}}{tail}"], score=_bank_card,
            context=CARD_CONTEXT),
        PatternUnit(
            name="CnUsccRecognizer", entity="CN_USCC", language=language,
            patterns=[rf"{lead}[0-9A-HJ-NPQRTUWXY]{{2}}\d{{6}}[0-9A-HJ-NPQRTUWXY]{{10}}{tail}"],
            score=_uscc, context=USCC_CONTEXT),
        PatternUnit(
            name="CnPassportRecognizer", entity="CN_PASSPORT", language=language,
            patterns=[rf"{lead}[EG]{SEP}\d(?:{SEP}\d){{7}}{tail}",
                      rf"{lead}E[A-HJ-NP-Z]{SEP}\d(?:{SEP}\d){{6}}{tail}"],
            score=_needs_context(0.3), context=PASSPORT_CONTEXT),
        PatternUnit(
            name="CnHkMacauPermitRecognizer", entity="CN_HK_MACAU_PERMIT", language=language,
            patterns=[rf"{lead}[HM]{SEP}\d(?:{SEP}\d){{7}}(?:{SEP}\d{SEP}\d)?{tail}"],
            score=_needs_context(0.3), context=PERMIT_CONTEXT),
        PatternUnit(
            name="CnLicensePlateRecognizer", entity="CN_LICENSE_PLATE", language=language,
            patterns=[rf"[{PROVINCES}][A-HJ-NP-Z][·・ ]?[A-HJ-NP-Z0-9]{{5,6}}{tail}"],
            score=_needs_context(0.35), context=PLATE_CONTEXT),
    ]
