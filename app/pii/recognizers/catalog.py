"""Every recognizer the engine runs, per language: Presidio's where they serve, ours elsewhere."""

from __future__ import annotations

from presidio_analyzer import EntityRecognizer
from presidio_analyzer.predefined_recognizers import (
    CreditCardRecognizer,
    DateRecognizer,
    IbanRecognizer,
    SpacyRecognizer,
    UsBankRecognizer,
    UsItinRecognizer,
    UsLicenseRecognizer,
    UsPassportRecognizer,
    UsSsnRecognizer,
)

from app.pii.recognizers import cn_ids, contact, english, network, places
from app.pii.recognizers.cn_entities import ChineseEntityRecognizer
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
        network.IpRecognizer(language),
        network.UrlRecognizer(language),
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
        *places.recognizers(),
    ]
    # Chinese names in English text too ("Refund for 李雷"): the tagger skips text without Han.
    return [*_shared("en"), *english_only, ChineseEntityRecognizer("en"),
            *_shared("zh"), ChineseEntityRecognizer("zh")]
