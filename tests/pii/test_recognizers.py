"""Recognizers through the whole engine, with the examples and look-alikes of DOMAIN.md."""

from __future__ import annotations

import pytest

from app.pii.engine import PiiEngine
from tests.pii.conftest import found


@pytest.mark.parametrize(("text", "expected"), [
    ("身份证号码11010519491231002X", ("CN_RESIDENT_ID", "11010519491231002X")),
    ("身份证440524188001010014。", ("CN_RESIDENT_ID", "440524188001010014")),
    ("旧身份证号110105491231002", ("CN_RESIDENT_ID", "110105491231002")),
    ("手机13812345678", ("PHONE_NUMBER", "13812345678")),
    ("电话 +86 138 1234 5678", ("PHONE_NUMBER", "+86 138 1234 5678")),
    ("联系0086-138-1234-5678", ("PHONE_NUMBER", "0086-138-1234-5678")),
    ("客户电话 (+33) 6 12 34 56 78，请回电。", ("PHONE_NUMBER", "(+33) 6 12 34 56 78")),
    ("银行卡6222026006705354216", ("CN_BANK_CARD", "6222026006705354216")),
    ("统一社会信用代码913502000728319549", ("CN_USCC", "913502000728319549")),
    ("护照号码E12345678", ("CN_PASSPORT", "E12345678")),
    ("护照EA1234567", ("CN_PASSPORT", "EA1234567")),
    ("港澳通行证H12345678", ("CN_HK_MACAU_PERMIT", "H12345678")),
    ("车牌号京A12345", ("CN_LICENSE_PLATE", "京A12345")),
    ("车牌粤BD12345", ("CN_LICENSE_PLATE", "粤BD12345")),
    ("邮箱zhang.wei@example.cn，谢谢", ("EMAIL_ADDRESS", "zhang.wei@example.cn")),
    ("收件人李明，电话13812345678", ("PERSON", "李明")),
    ("欧阳娜娜女士您好", ("PERSON", "欧阳娜娜")),
    ("我住在广东省深圳市南山区科技园路1号3栋2单元501室。",
     ("LOCATION", "广东省深圳市南山区科技园路1号3栋2单元501室")),
])
def test_chinese_entities(engine: PiiEngine, text: str, expected: tuple[str, str]) -> None:
    assert expected in found(engine, text)


@pytest.mark.parametrize("text", [
    "身份证号码110105194912310021",  # wrong check character
    "订单号110105194912310021已发货",
    "日期110105194902301234",  # 30 February
    "您的快递单号为SF1234567890123，预计明天送达。",
    "本次订单金额为12,345.67元，已支付成功。",
    "员工工号A10234，部门：技术部。",
    "客服热线400-800-8888，工作时间9:00-18:00。",
    "他性格耿直，大家都很喜欢他。",
    "今天下午很安静，适合看书。",
    "号码12812345678",  # 12x is not a mobile prefix
    "车牌京I12345",  # no I on plates
    "代码913502000728319548",  # USCC check fails
])
def test_look_alikes_are_not_flagged(engine: PiiEngine, text: str) -> None:
    kinds = {kind for kind, _ in found(engine, text)}
    assert not kinds & {"CN_RESIDENT_ID", "PHONE_NUMBER", "CN_BANK_CARD", "PERSON", "CN_USCC",
                        "CN_LICENSE_PLATE", "CREDIT_CARD"}, found(engine, text)


@pytest.mark.parametrize("number", ["1-415-555-0132", "1 (415) 555-0132", "1 415 555 0132"])
def test_a_north_american_number_with_its_code_apart_is_found_in_chinese_text(
        engine: PiiEngine, number: str) -> None:
    assert ("PHONE_NUMBER", number) in found(engine, f"客户电话 {number}，请回电")
    assert not found(engine, f"客户电话 {number[:-1]}，请回电")  # one digit short: no number


def test_unionpay_card_failing_luhn_needs_context(engine: PiiEngine) -> None:
    assert ("CN_BANK_CARD", "6222026006705354217") in found(engine, "银行卡号6222026006705354217")
    assert not found(engine, "编号6222026006705354217")


@pytest.mark.parametrize(("text", "expected"), [
    ("Ship it to 213 Endeavour Lane, Springfield.",
     ("LOCATION", "213 Endeavour Lane, Springfield")),
    ("I live at Via Pasquale Scura 127", ("LOCATION", "Via Pasquale Scura 127")),
    ("Send it to Hadikgasse 49, Apt. 542", ("LOCATION", "Hadikgasse 49, Apt. 542")),
    ("Call me on +44 20 7946 0958 tomorrow", ("PHONE_NUMBER", "+44 20 7946 0958")),
    ("my mobile is 070 4493 5104", ("PHONE_NUMBER", "070 4493 5104")),
    ("Please call me at (+852) 5123 4567 tomorrow.", ("PHONE_NUMBER", "(+852) 5123 4567")),
    ("my name is sofia reyes", ("PERSON", "sofia reyes")),
    ("Hi Keiran, thanks for the update", ("PERSON", "Keiran")),
    ("She was born on 1984-03-12 in Ohio", ("DATE_TIME", "1984-03-12")),
    ("We moved here from Martna", ("LOCATION", "Martna")),
    ("Write to jane.doe@example.com", ("EMAIL_ADDRESS", "jane.doe@example.com")),
])
def test_english_improvements(engine: PiiEngine, text: str, expected: tuple[str, str]) -> None:
    assert expected in found(engine, text, "en")


@pytest.mark.parametrize(("text", "value"), [
    ("Our CEO asked about the SSN field", "SSN"),
    ("The IBAN and the CEO", "CEO"),
])
def test_acronyms_are_not_names_or_organisations(engine: PiiEngine, text: str,
                                                 value: str) -> None:
    assert all(v != value for _, v in found(engine, text, "en"))


def test_domain_inside_an_email_is_not_a_url(engine: PiiEngine) -> None:
    assert found(engine, "mail bob@example.com today", "en") == [
        ("EMAIL_ADDRESS", "bob@example.com")]


def test_relative_dates_are_not_reported(engine: PiiEngine) -> None:
    assert all(kind != "DATE_TIME" for kind, _ in found(engine, "see you next week", "en"))


@pytest.mark.parametrize(("text", "expected"), [
    ("手机１３８１２３４５６７８。", ("PHONE_NUMBER", "１３８１２３４５６７８")),
    ("身份证1101\u200b0519\u200b4912\u200b3100\u200b2X", ("CN_RESIDENT_ID",
                                                      "1101\u200b0519\u200b4912\u200b3100\u200b2X")),
    ("身份证 1101 0519 4912 3100 2X 请核实", ("CN_RESIDENT_ID", "1101 0519 4912 3100 2X")),
    ("手机138-1234-5678", ("PHONE_NUMBER", "138-1234-5678")),
    ("mail јаnе@ехаmple.com", ("EMAIL_ADDRESS", "јаnе@ехаmple.com")),
    ("contact jane at example dot com today", ("EMAIL_ADDRESS", "jane at example dot com")),
    ("护照 E123 4567 8", ("CN_PASSPORT", "E123 4567 8")),
])
def test_evasions_are_caught_with_original_offsets(engine: PiiEngine, text: str,
                                                   expected: tuple[str, str]) -> None:
    assert expected in found(engine, text)


def test_mixed_text_finds_both_scripts(engine: PiiEngine) -> None:
    result = found(engine, "请联系 Mary Johnson，手机13812345678，邮箱 mary@example.com")
    assert ("PERSON", "Mary Johnson") in result
    assert ("PHONE_NUMBER", "13812345678") in result
    assert ("EMAIL_ADDRESS", "mary@example.com") in result


def test_language_is_decided_by_script(engine: PiiEngine) -> None:
    assert engine.analyze("客户张伟")[0] == "zh"
    assert engine.analyze("customer John")[0] == "en"
    assert engine.analyze("")[1] == []


# Regression set: false positives seen during tuning, each fixed and kept fixed.
@pytest.mark.parametrize(("text", "language", "not_expected"), [
    ("SSN 899-48-2613 on file", "en", ("PHONE_NUMBER", "899-48-2613")),
    ("cc 4218196001337 please", "en", ("DATE_TIME", "4218196001337")),
    ("3240 Meadow Drive\nMobile: 730 064 218", "en", ("PERSON", "Meadow Drive\nMobile")),
    ("the corner of 35116 Rua Arapiraca 1943", "en", ("PERSON", "Rua Arapiraca")),
    ("Written when he was 83.", "en", ("DATE_TIME", "83")),
    ("请将发票寄到广东省广州市越秀区解放路471号阳光花园29栋", "zh", ("PERSON", "阳光")),
    ("请马强同学于周五前提交材料，邮箱 ma at example dot com", "zh",
     ("PERSON", "请马强同学于周五前提交材料")),
    ("Hi there, thanks again", "en", ("PERSON", "there")),
])
def test_fixed_false_positives_stay_fixed(engine: PiiEngine, text: str, language: str,
                                          not_expected: tuple[str, str]) -> None:
    assert not_expected not in found(engine, text, language)


def test_a_phone_numbers_validity_is_libphonenumbers_own() -> None:
    """The recognizer asks for a number's type once (UNKNOWN when it is not valid) instead of
    asking whether it is valid and then its type: the same answer for any candidate."""
    import random

    import phonenumbers

    from app.pii.recognizers import phone

    pick = random.Random(3)
    valid = 0
    for _ in range(3_000):
        region = pick.choice((*phone.REGIONS, None))
        candidate = pick.choice(("", "+", "00", "0", "+1", "+86", "+44")) + "".join(
            pick.choice("0123456789") for _ in range(pick.randint(7, 13)))
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            assert not phone._valid(candidate, region)
            continue
        expected = phonenumbers.is_valid_number(number) and \
            phonenumbers.number_type(number) not in phone.BUSINESS_NUMBERS
        assert phone._valid(candidate, region) == expected, (candidate, region)
        valid += expected
    assert valid > 50  # the sample has valid numbers, not only invalid ones
