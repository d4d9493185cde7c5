"""Check characters of Chinese identifiers and card numbers (see shared DOMAIN.md)."""

from __future__ import annotations

from datetime import date

RESIDENT_ID_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
RESIDENT_ID_CHECK = "10X98765432"
# First two digits of the administrative region code.
REGION_PREFIXES = frozenset({
    11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46,
    50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83,
})
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
USCC_WEIGHTS = (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)
ORG_CODE_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)


def _real_date(year: int, month: int, day: int) -> bool:
    try:
        born = date(year, month, day)
    except ValueError:
        return False
    return date(1850, 1, 1) <= born <= date.today()


def resident_id_check_char(first17: str) -> str:
    total = sum(int(d) * w for d, w in zip(first17, RESIDENT_ID_WEIGHTS, strict=True))
    return RESIDENT_ID_CHECK[total % 11]


def valid_resident_id(value: str) -> bool:
    """18-character ID (GB 11643-1999): region, real birth date, check character.

    Also the 18-character IDs of the same layout: residence permits for Hong Kong, Macau and
    Taiwan residents (810000, 820000, 830000) and foreigners' permanent residence ID cards.
    """
    value = value.upper()
    if len(value) != 18 or not value[:17].isdigit() or not (value[17].isdigit() or
                                                           value[17] == "X"):
        return False
    # 9 + province: the foreigner's permanent residence ID card (2023), same layout and check
    region = int(value[1:3]) if value[0] == "9" else int(value[:2])
    if region not in REGION_PREFIXES:
        return False
    if not _real_date(int(value[6:10]), int(value[10:12]), int(value[12:14])):
        return False
    return resident_id_check_char(value[:17]) == value[17]


def valid_old_resident_id(value: str) -> bool:
    """15-digit ID (GB 11643-1989): region and a real 19YY birth date; it has no check."""
    if len(value) != 15 or not value.isdigit() or int(value[:2]) not in REGION_PREFIXES:
        return False
    return _real_date(1900 + int(value[6:8]), int(value[8:10]), int(value[10:12]))


def resident_id_birth_date(value: str) -> date | None:
    value = value.upper()
    try:
        if len(value) == 18:
            return date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
        if len(value) == 15:
            return date(1900 + int(value[6:8]), int(value[8:10]), int(value[10:12]))
    except ValueError:
        return None
    return None


def luhn_valid(digits: str) -> bool:
    if not digits.isdigit() or len(digits) < 12:
        return False
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = int(char)
        if position % 2 == 1:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


def _org_code_valid(code: str) -> bool:
    """The 9-character organisation code inside a USCC (GB 11714).

    Its letters take their GB 11714 values (A=10 ... Z=35, all 26 letters), not their place
    in the USCC alphabet, which skips I O S V Z: 91310115MA1K3BTP2B is valid.
    """
    if not code[:8].isalnum() or not code[:8].isascii():
        return False
    values = [int(c, 36) for c in code[:8]]  # GB 11714: 0-9, then A=10 ... Z=35
    remainder = 11 - sum(v * w for v, w in zip(values, ORG_CODE_WEIGHTS, strict=True)) % 11
    expected = {10: "X", 11: "0"}.get(remainder, str(remainder))
    return code[8] == expected


def uscc_check_valid(value: str) -> bool:
    """The USCC's own check character (GB 32100-2015), without its organisation code."""
    value = value.upper()
    if len(value) != 18 or any(c not in USCC_ALPHABET for c in value):
        return False
    total = sum(USCC_ALPHABET.index(c) * w for c, w in zip(value[:17], USCC_WEIGHTS,
                                                            strict=True))
    return USCC_ALPHABET[(31 - total % 31) % 31] == value[17]


def valid_uscc(value: str) -> bool:
    """Unified Social Credit Code (GB 32100-2015), including its organisation code."""
    return uscc_check_valid(value) and _org_code_valid(value.upper()[8:17])
