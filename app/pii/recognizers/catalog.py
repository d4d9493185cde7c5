"""Every recognizer the engine runs, per language: Presidio's where they serve, ours elsewhere."""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    DateRecognizer,
    IbanRecognizer,
    IpRecognizer,
    SpacyRecognizer,
    UrlRecognizer,
    UsBankRecognizer,
    UsItinRecognizer,
    UsLicenseRecognizer,
    UsPassportRecognizer,
    UsSsnRecognizer,
)

from app.pii.recognizers import cn_address, cn_ids, cn_names, contact, english
from app.pii.recognizers.phone import PhoneNumberRecognizer

SPACY_ENTITIES = ["PERSON", "LOCATION", "NRP", "DATE_TIME", "ORGANIZATION"]


def _shared(language: str) -> list[EntityRecognizer]:
    """Language-neutral recognizers: identifiers and contact data look the same in any text."""
    return [
        *contact.recognizers(language),
        PhoneNumberRecognizer(language),
        *cn_ids.recognizers(language),
        CreditCardRecognizer(supported_language=language),
        IbanRecognizer(supported_language=language),
        IpRecognizer(supported_language=language),
        UrlRecognizer(supported_language=language),
    ]


def build_recognizers() -> list[EntityRecognizer]:
    english_only: list[EntityRecognizer] = [
        SpacyRecognizer(supported_language="en", supported_entities=SPACY_ENTITIES),
        DateRecognizer(supported_language="en"),
        UsSsnRecognizer(supported_language="en"),
        UsLicenseRecognizer(supported_language="en"),
        UsPassportRecognizer(supported_language="en"),
        UsBankRecognizer(supported_language="en"),
        UsItinRecognizer(supported_language="en"),
        *english.recognizers(),
    ]
    chinese_only: list[EntityRecognizer] = [
        cn_names.ChineseNameRecognizer(),
        cn_address.ChineseAddressRecognizer(),
    ]
    return [*_shared("en"), *english_only, *_shared("zh"), *chinese_only]
