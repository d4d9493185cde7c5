"""Phone numbers of many countries, in one pass.

Presidio's PhoneRecognizer runs libphonenumber's matcher once per region over the whole text,
which costs a pass per region. This finds number-shaped candidates with one expression and asks
libphonenumber only about those: valid with a country code, or valid in one of the regions.

A candidate must look like a phone number as people write one, not merely be digits that some
region's numbering plan accepts: digit groups from a score table ("3 1 2 0 4 5") are not joined
into a number, and a bare run of digits without a country code, trunk prefix or separators is
reported only with context, since account, passport and social security numbers look the same.
A candidate that is valid in none of the regions is not reported, context or not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache

import phonenumbers
import regex

from app.pii.recognizers.base import Span, SpanRecognizer

REGIONS = ("US", "GB", "CA", "AU", "IN", "DE", "FR", "IT", "ES", "NL", "BE", "SE", "NO", "DK",
           "FI", "CH", "AT", "IE", "PL", "CZ", "HU", "PT", "BR", "MX", "CN", "HK", "SG", "JP",
           "KR", "ZA", "NZ", "IL", "TR", "GR", "IS", "CY", "SI", "UY", "TN", "RU")
# "number" alone is not here: account, passport and social security numbers have it too.
NATIONAL_REGIONS = {"zh": ("CN", "HK")}  # where a number without country code in a text is from
CONTEXT = ("phone", "mobile", "tel", "telephone", "call", "cell", "fax", "desk", "office",
           "contact", "reach", "whatsapp", "sms", "text", "电话", "手机", "致电", "联系")
# After a label's colon ("phone:415-555-0132") but not inside a time (10:30) or an IPv6 group.
CANDIDATE = regex.compile(
    r"(?<![A-Za-z0-9_+/.\-])(?<![0-9]:)(?<!:[0-9A-Fa-f]{1,4}:)"
    r"(?:\+|00)?(?:\(\+?[0-9]{1,4}\)[ .\-]?)?[0-9][0-9 .()/\-]{5,20}[0-9](?![A-Za-z0-9_/])",
    regex.VERSION1)
GROUP = regex.compile(r"\+?[0-9]++")
NOT_PHONES = regex.compile(
    r"^\d{4}[-/.]\d{1,2}[-/.]\d{1,2}|^\d{1,2}[-/.]\d{1,2}[-/.]\d{2,4}$|^\d+\.\d+\.\d+\.\d+$|"
    r"^\d{1,3}(?:,\d{3})+|^\d{3}-\d{2}-\d{4}$")  # dates, IPs, amounts, US SSNs
BUSINESS_NUMBERS = frozenset({phonenumbers.PhoneNumberType.TOLL_FREE,
                              phonenumbers.PhoneNumberType.SHARED_COST,
                              phonenumbers.PhoneNumberType.PREMIUM_RATE,
                              phonenumbers.PhoneNumberType.UAN})
NOT_PERSONAL = BUSINESS_NUMBERS | {phonenumbers.PhoneNumberType.UNKNOWN}  # or not valid
INTERNATIONAL_SCORE = 0.75
NATIONAL_SCORE = 0.55
BARE_SCORE = 0.3  # a bare digit run, valid somewhere: reported with context only


@lru_cache(maxsize=4096)
def phone_score(candidate: str, regions: tuple[str, ...] = REGIONS) -> float | None:
    """A valid number written as phone numbers are; a valid bare digit run needs context.

    A number without a country code is checked against `regions` only: in Chinese text a
    number valid only in Germany's or India's numbering plan is not a phone number.
    """
    digits = "".join(c for c in candidate if c.isdigit())
    if not 7 <= len(digits) <= 15 or NOT_PHONES.match(candidate):
        return None
    if candidate.startswith(("+", "00")):
        return INTERNATIONAL_SCORE if _valid(candidate, None) else None
    if not any(_valid_in(candidate, digits, region)
               for region in _plausible_regions(digits, regions)):
        # North America's country code written apart, with no plus: 1-415-555-0132 in any text
        return INTERNATIONAL_SCORE if _NANP_CODE_APART.match(candidate) and \
            _valid("+" + candidate, None) else None
    return NATIONAL_SCORE if _written_as_phone(candidate) else BARE_SCORE


_NANP_CODE_APART = regex.compile(r"1[ .\-](?=\(?[0-9]{3}\)?[ .\-]?[0-9]{3}[ .\-][0-9]{4}$)")


def _valid(candidate: str, region: str | None) -> bool:
    """A valid number of a person or a line, not a company's hotline (400-800-8888)."""
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return False
    # number_type is UNKNOWN exactly when is_valid_number is false, and asking both costs
    # twice: each looks the number's region up (for +1, through the NANP's regions) and its type
    return phonenumbers.number_type(number) not in NOT_PERSONAL


def _valid_in(candidate: str, digits: str, region: _Region) -> bool:
    """_valid(candidate, region.code), without libphonenumber's parse where its national number
    is the digits as written: no plus, and no trunk or carrier prefix, dial-out prefix or
    country code in front for parse to take off (a mainland mobile, a North American number
    without the 1)."""
    if "+" in candidate or digits[0] == "0" or region.dial_out.match(digits) or \
            digits.startswith(region.country_code) or \
            (region.for_parsing and region.for_parsing.match(digits)):
        return _valid(candidate, region.code)  # "(+852) 5123 4567": parse reads it as dialled
    number = phonenumbers.PhoneNumber(country_code=int(region.country_code),
                                      national_number=int(digits))
    return phonenumbers.number_type(number) not in NOT_PERSONAL


# A person's or a line's number is one of these types (libphonenumber's number_type): a number
# that none of their patterns matches is, in that region, invalid or a business line.
PERSONAL_TYPES = ("fixed_line", "mobile", "voip", "personal_number", "pager", "voicemail")


@dataclass(frozen=True)
class _Region:
    code: str
    general: re.Pattern[str]  # any national number of the region
    prefix: str  # the trunk prefix dialled before a national number (0 in most of Europe)
    country_code: str
    dial_out: re.Pattern[str]  # the prefix dialled before another country's number (011, 810)
    for_parsing: re.Pattern[str] | None  # what parse takes off a national number's front
    # the personal types' patterns of every region with this country code (a number parsed in
    # the US may be Jamaica's, in Russia Kazakhstan's), where libphonenumber's parse gives a
    # national number that is the digits, less the trunk prefix or the country code (None where
    # its rules for parsing a national number do more, as in Brazil, China or Japan: there it
    # decides alone)
    personal: re.Pattern[str] | None


@cache
def _regions() -> list[_Region]:
    """Each region's patterns for its national numbers: cheap tests before libphonenumber's."""
    regions = []
    for region in REGIONS:
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        general = metadata.general_desc if metadata is not None else None
        if metadata is None or general is None or not general.national_number_pattern:
            continue
        prefix = str(metadata.national_prefix or "")
        simple = metadata.national_prefix_transform_rule is None and \
            metadata.national_prefix_for_parsing in (None, metadata.national_prefix)
        patterns = [str(desc.national_number_pattern)
                    for sharing in phonenumbers.region_codes_for_country_code(
                        int(metadata.country_code or 0))
                    if (shared := phonenumbers.PhoneMetadata.metadata_for_region(sharing))
                    for kind in PERSONAL_TYPES
                    if (desc := getattr(shared, kind)) is not None and desc.national_number_pattern]
        regions.append(_Region(region, re.compile(str(general.national_number_pattern)), prefix,
                               str(metadata.country_code),
                               re.compile(str(metadata.international_prefix or "(?!)")),
                               re.compile(str(metadata.national_prefix_for_parsing or prefix))
                               if metadata.national_prefix_for_parsing or prefix else None,
                               re.compile("|".join(f"(?:{p})" for p in patterns))
                               if simple and patterns else None))
    return regions


def _plausible_regions(digits: str, regions: tuple[str, ...]) -> Iterator[_Region]:
    """One at a time, in the order of REGIONS: the first valid one ends the search. A region
    is left out where the digits cannot be its national number, or can be only of a type that
    is never a person's (libphonenumber's parse, the costly part, then has nothing to add)."""
    for region in _regions():
        if region.code not in regions:
            continue
        national = [digits]
        if region.prefix and digits.startswith(region.prefix):
            national.append(digits[len(region.prefix):])
        if not any(region.general.fullmatch(n) for n in national):
            continue
        if region.personal is not None and not region.dial_out.match(digits):  # else parse
            # reads another country's number after the prefix: only it can tell
            if digits.startswith(region.country_code):  # parse takes it off where it fits
                national.append(digits[len(region.country_code):])
            if not any(region.personal.fullmatch(n) for n in national):
                continue
        yield region


def _written_as_phone(candidate: str) -> bool:
    """Grouped digits, ten or more after a trunk prefix 0, or a North American number.

    Two groups split by a space and shorter than ten digits ("1222 4146 Port Washington
    Road") are as often house numbers and postcodes as a local phone number.
    """
    digits = sum(c.isdigit() for c in candidate)
    if not candidate.isdigit():
        spaced_pair = len(candidate.split()) == 2 and not any(c in candidate for c in "-.()/")
        return not (spaced_pair and digits < 10)
    if candidate.startswith("0"):
        return len(candidate) >= 10
    return len(candidate) == 10 and _valid(candidate, "US")


def precise_start(candidate: str) -> int:
    """Where the phone number starts in a candidate: leading digit groups of a score table
    ("Tottenham 2 1 0 1") are dropped until at most one group is a single digit."""
    groups: list[tuple[int, bool]] = [(int(g.start()), len(g.group().strip("+")) == 1)
                                      for g in GROUP.finditer(candidate)]
    singles = sum(single for _, single in groups)
    if singles <= 1:
        return 0
    for start, single in groups:
        if singles <= 1:
            return start
        singles -= single
    return len(candidate)


class PhoneNumberRecognizer(SpanRecognizer):
    def __init__(self, language: str):
        super().__init__(name="PhoneNumberRecognizer", entity="PHONE_NUMBER", language=language,
                         context=CONTEXT)
        self._regions = NATIONAL_REGIONS.get(language, REGIONS)

    def find(self, text: str) -> Iterator[Span]:
        for match in CANDIDATE.finditer(text):
            value = match.group()
            offset = precise_start(value)
            value = value[offset:].rstrip(" .-/(")
            score = phone_score(value, self._regions) if value else None
            if score is not None:
                start = match.start() + offset
                yield start, start + len(value), score
