from datetime import date

import pytest

from app.pii.operators import OperatorContext, OperatorError, apply

CONTEXT = OperatorContext(hash_key=b"k" * 32, today=date(2026, 11, 22))


@pytest.mark.parametrize(("entity", "value", "masked"), [
    ("CN_RESIDENT_ID", "11010519491231002X", "110105********002X"),
    ("PHONE_NUMBER", "13812345678", "138****5678"),
    ("PHONE_NUMBER", "+86 138 1234 5678", "138****5678"),
    ("PHONE_NUMBER", "１３８１２３４５６７８", "138****5678"),
    ("PHONE_NUMBER", "+1 415-555-0132", "+* ***-***-0132"),
    ("CN_BANK_CARD", "6222026006705354216", "622202*********4216"),
    ("CREDIT_CARD", "4111 1111 1111 1111", "4111 11** **** 1111"),
    ("PERSON", "李明", "李*"),
    ("PERSON", "欧阳娜娜", "欧阳**"),
    ("PERSON", "John Smith", "J*** S****"),
    ("EMAIL_ADDRESS", "jane@example.com", "j***@example.com"),
    ("LOCATION", "广东省深圳市南山区科技园路1号", "广东省深圳市南山区***"),
    ("LOCATION", "213 Endeavour Lane, Springfield", "***, Springfield"),
    # a North American number is no mainland mobile, however it is written
    ("PHONE_NUMBER", "1-415-555-0132", "*-***-***-0132"),
    ("PHONE_NUMBER", "(+1) 415 555 0132", "(+*) *** *** 0132"),
    ("PHONE_NUMBER", "(+86) 138 1234 5678", "138****5678"),
    # the estate (小区) is no district, and a flat after the last comma is not kept
    ("LOCATION", "杭州市阳光花园小区5栋302室", "杭州市***"),
    ("LOCATION", "浙江省杭州市西湖区文三路90号", "浙江省杭州市西湖区***"),
    ("LOCATION", "Hadikgasse 49, Apt. 542", "***"),
    ("LOCATION", "北京市天通苑东三区5号楼2单元301", "北京市***"),   # a housing block's 区
    ("LOCATION", "长春市红旗街100号", "长春市***"),                  # 旗 of a street name
    ("LOCATION", "上海市浦东新区张江高科技园区", "上海市浦东新区***"),
    ("LOCATION", "内蒙古自治区呼和浩特市新城区中山路1号", "内蒙古自治区呼和浩特市新城区***"),
    ("LOCATION", "海淀区中关村大街1号", "海淀区***"),
])
def test_mask_conventions(entity: str, value: str, masked: str) -> None:
    assert apply("mask", value, entity, {}, CONTEXT) == masked


def test_mask_character_is_configurable() -> None:
    assert apply("mask", "13812345678", "PHONE_NUMBER", {"masking_char": "#"}, CONTEXT) == \
        "138####5678"


def test_redact_and_replace() -> None:
    assert apply("redact", "13812345678", "PHONE_NUMBER", {}, CONTEXT) == ""
    assert apply("replace", "13812345678", "PHONE_NUMBER", {}, CONTEXT) == "<PHONE_NUMBER>"
    assert apply("replace", "x", "PERSON", {"new_value": "[name]"}, CONTEXT) == "[name]"


@pytest.mark.parametrize(("entity", "value", "params", "expected"), [
    ("DATE_TIME", "1993-05-17", {}, "30-35"),
    ("DATE_TIME", "1993-05-17", {"level": "year"}, "1993"),
    ("DATE_TIME", "1993年5月17日", {"level": "month"}, "1993-05"),
    ("AGE", "32岁", {}, "30-35"),
    ("AGE", "47", {"width": 10}, "40-50"),
    ("LOCATION", "100101", {}, "100***"),
    ("CN_RESIDENT_ID", "11010519491231002X", {}, "75-80"),
])
def test_generalize(entity: str, value: str, params: dict[str, object], expected: str) -> None:
    assert apply("generalize", value, entity, params, CONTEXT) == expected


def test_generalize_refuses_what_it_cannot_read() -> None:
    with pytest.raises(OperatorError):
        apply("generalize", "next Tuesday", "DATE_TIME", {}, CONTEXT)


def test_hash_is_keyed_and_never_unkeyed() -> None:
    first = apply("hash", "13812345678", "PHONE_NUMBER", {}, CONTEXT)
    other_key = OperatorContext(hash_key=b"j" * 32)
    assert len(first) == 64
    assert first == apply("hash", "13812345678", "PHONE_NUMBER", {}, CONTEXT)
    assert first != apply("hash", "13812345678", "PHONE_NUMBER", {}, other_key)
    import hashlib

    assert first != hashlib.sha256(b"13812345678").hexdigest()
    with pytest.raises(OperatorError, match="needs a key"):
        apply("hash", "13812345678", "PHONE_NUMBER", {}, OperatorContext())


@pytest.mark.parametrize("name", ["tokenize", "encrypt"])
def test_protecting_operators_need_the_subjects_key(name: str) -> None:
    with pytest.raises(OperatorError, match="subject's key"):
        apply(name, "x", "PERSON", {}, CONTEXT)
    bound = OperatorContext(protect=lambda value, entity: f"sealed({entity}:{len(value)})")
    assert apply(name, "138", "PHONE_NUMBER", {}, bound) == "sealed(PHONE_NUMBER:3)"


def test_unknown_operator() -> None:
    with pytest.raises(OperatorError, match="supported"):
        apply("scramble", "x", "PERSON", {}, CONTEXT)
