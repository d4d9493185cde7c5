"""Identifier recognizers: the defects of issue 16, kept fixed, and linear time on hostile input."""

from __future__ import annotations

import time

import pytest
from presidio_analyzer import EntityRecognizer

from app.pii.engine import PiiEngine
from app.pii.overlaps import NAMED_ENTITIES
from app.pii.recognizers.catalog import build_recognizers
from tests.pii.conformance import ADVERSARIAL_INPUTS
from tests.pii.conftest import found

SECONDS_PER_INPUT = 1.0


@pytest.mark.parametrize(("text", "expected"), [
    ("统一社会信用代码91310115MA1K3BTP2B", ("CN_USCC", "91310115MA1K3BTP2B")),
    ("Server 2001:db8::1 is down", ("IP_ADDRESS", "2001:db8::1")),
    ("loopback ::1 only", ("IP_ADDRESS", "::1")),
    ("iface fe80::1%eth0 up", ("IP_ADDRESS", "fe80::1%eth0")),
    ("mapped ::ffff:192.0.2.1 here", ("IP_ADDRESS", "::ffff:192.0.2.1")),
    ("服务器地址2001:db8::1，请检查", ("IP_ADDRESS", "2001:db8::1")),
    ("网关192.168.1.1无响应", ("IP_ADDRESS", "192.168.1.1")),
    ("my social security number 078051121", ("US_SSN", "078051121")),
    ("my passport: 912803456", ("US_PASSPORT", "912803456")),
    ("driver's license number is C1234567", ("US_DRIVER_LICENSE", "C1234567")),
    ("bank account 945456787654", ("US_BANK_NUMBER", "945456787654")),
    ("mail 用户@例子.中国 now", ("EMAIL_ADDRESS", "用户@例子.中国")),
    ("邮箱用户@例子.中国请回复", ("EMAIL_ADDRESS", "用户@例子.中国")),
    ("mail user@bücher.de now", ("EMAIL_ADDRESS", "user@bücher.de")),
    ("phone:415-555-0132", ("PHONE_NUMBER", "415-555-0132")),
    ("+8613238234822", ("PHONE_NUMBER", "+8613238234822")),
    ("手机+8613238234822", ("PHONE_NUMBER", "+8613238234822")),
    ("外国人永久居留身份证932682198501010017", ("CN_RESIDENT_ID", "932682198501010017")),
    ("see https://example.com/a?b=c now", ("URL", "https://example.com/a?b=c")),
    ("统一社会信用代码 9131 0115 MA1K 3BTP 2B", ("CN_USCC", "9131 0115 MA1K 3BTP 2B")),
    ("信用代码911101005JLR20JR60", ("CN_USCC", "911101005JLR20JR60")),  # pilot-era code
    ("银行卡号1034503324951584964", ("CN_BANK_CARD", "1034503324951584964")),
    ("护照号码DE2345678", ("CN_PASSPORT", "DE2345678")),
    ("电话021-22033212-123", ("PHONE_NUMBER", "021-22033212-123")),
])
def test_identifier_is_found(engine: PiiEngine, text: str, expected: tuple[str, str]) -> None:
    assert expected in found(engine, text)


@pytest.mark.parametrize(("text", "kind"), [
    ("Final table: Arsenal 3 1 2 0 4 5 Chelsea", "PHONE_NUMBER"),
    ("Tottenham 2 1 0 1 Everton", "PHONE_NUMBER"),
    ("mail user@bücher.de now", "URL"),
    ("use std::cout and MyClass::toString", "IP_ADDRESS"),
    ("MAC address aa:bb:cc:dd:ee:ff", "IP_ADDRESS"),
    ("meet at 12:34:56", "IP_ADDRESS"),
    ("www.microsoft and http://microsoft", "URL"),
    ("The letter arrived at 18263 216 Karaiskaki Sq", "PHONE_NUMBER"),
    ("Dr. Yoshimura, Suite 940 99530 Martin Linges veg 1", "PHONE_NUMBER"),
    ("order 911101005JLR20JR60 shipped", "CN_USCC"),  # a weak USCC check needs context
])
def test_look_alike_is_not_flagged(engine: PiiEngine, text: str, kind: str) -> None:
    assert all(k != kind for k, _ in found(engine, text, "en")), found(engine, text, "en")


def _identifier_recognizers() -> list[EntityRecognizer]:
    chosen: dict[str, EntityRecognizer] = {}
    for recognizer in build_recognizers():
        if not set(recognizer.supported_entities) & NAMED_ENTITIES:
            chosen.setdefault(str(recognizer.name), recognizer)  # type: ignore[has-type]
    return list(chosen.values())


@pytest.mark.slow
@pytest.mark.parametrize("label", list(ADVERSARIAL_INPUTS))
def test_identifier_recognizers_run_in_linear_time(label: str) -> None:
    text = ADVERSARIAL_INPUTS[label]
    slow: dict[str, float] = {}
    for recognizer in _identifier_recognizers():
        started = time.thread_time()  # CPU of this thread: the work, not the machine's load
        recognizer.analyze(text, recognizer.supported_entities,
                           None)  # type: ignore[arg-type]  # pattern recognizers need no NLP
        elapsed = time.thread_time() - started
        if elapsed > SECONDS_PER_INPUT:
            slow[str(recognizer.name)] = round(elapsed, 2)  # type: ignore[has-type]
    assert not slow, f"{label}: {slow}"
