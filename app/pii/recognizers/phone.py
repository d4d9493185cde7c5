"""Phone numbers of many countries, in one pass.

Presidio's PhoneRecognizer runs libphonenumber's matcher once per region over the whole text,
which costs a pass per region. This finds number-shaped candidates with one expression and asks
libphonenumber only about those: valid with a country code, or valid in one of the regions.
"""

from __future__ import annotations

import phonenumbers
import regex
from presidio_analyzer import EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

from app.pii.recognizers.base import make_result

REGIONS = ("US", "GB", "CA", "AU", "IN", "DE", "FR", "IT", "ES", "NL", "BE", "SE", "NO", "DK",
           "FI", "CH", "AT", "IE", "PL", "CZ", "HU", "PT", "BR", "MX", "CN", "HK", "SG", "JP",
           "KR", "ZA", "NZ", "IL", "TR", "GR", "IS", "CY", "SI", "UY", "TN", "RU")
CONTEXT = ("phone", "mobile", "tel", "telephone", "call", "cell", "fax", "desk", "office",
           "number", "contact", "reach", "whatsapp", "sms", "text")
CANDIDATE = regex.compile(
    r"(?<![\w+/.:-])(?:\+|00)?(?:\(\+?\d{1,4}\)[ .-]?)?\d[\d .()/-]{5,20}\d(?![\w/])")
NOT_PHONES = regex.compile(
    r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$|^\d+\.\d+\.\d+\.\d+$|"
    r"^\d{1,3}(?:,\d{3})+|^\d{3}-\d{2}-\d{4}$")  # dates, IPs, amounts, US SSNs


def phone_score(candidate: str) -> float | None:
    digits = sum(c.isdigit() for c in candidate)
    if not 7 <= digits <= 15 or NOT_PHONES.match(candidate):
        return None
    international = candidate.startswith(("+", "00"))
    for region in (None,) if international else REGIONS:
        try:
            number = phonenumbers.parse(candidate, region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(number):
            return 0.75 if international else 0.55
    return 0.3 if digits >= 8 else None  # phone-shaped: reported with context only


class PhoneNumberRecognizer(EntityRecognizer):
    def __init__(self, language: str):
        super().__init__(supported_entities=["PHONE_NUMBER"], name="PhoneNumberRecognizer",
                         supported_language=language, context=list(CONTEXT))

    def load(self) -> None:
        return None

    def analyze(self, text: str, entities: list[str],
                nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        results = []
        for match in CANDIDATE.finditer(text):
            value = match.group().rstrip(" .-/(")
            score = phone_score(value)
            if score is None:
                continue
            results.append(make_result(self, entity="PHONE_NUMBER", start=match.start(),
                                       end=match.start() + len(value), score=score))
        return results
