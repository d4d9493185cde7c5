"""Host names in e-mail addresses and URLs, checked against known top-level domains.

Names come from the public-suffix list that tldextract (a Presidio dependency) bundles, read
offline. A host without a scheme ("example.com" in running text) must end in a TLD from the
curated list of Presidio's URL recognizer, which leaves out brand TLDs such as `.microsoft`
that are also common words; internationalised TLDs (`.中国`, `xn--p1ai`) count as known.
"""

from __future__ import annotations

import pkgutil
from functools import cache

import regex
from presidio_analyzer.predefined_recognizers import UrlRecognizer
from tldextract.suffix_list import extract_tlds_from_suffix_list

MAX_HOST = 253
MAX_LABEL = 63
# A label of a host name: letters and digits of any script, inner hyphens; never 64+ chars.
LABEL = regex.compile(r"[\p{L}\p{N}](?:[\p{L}\p{N}\-]{0,61}[\p{L}\p{N}])?", regex.VERSION1)


@cache
def public_tlds() -> frozenset[str]:
    data = pkgutil.get_data("tldextract", ".tld_set_snapshot")
    public, _ = extract_tlds_from_suffix_list((data or b"").decode("utf-8"))
    return frozenset(suffix.rsplit(".", 1)[-1].lower() for suffix in public)


@cache
def common_tlds() -> frozenset[str]:
    curated = regex.findall(r"\(\?:([a-z0-9\-]+)\)", UrlRecognizer.BASE_URL_REGEX)
    return frozenset(curated) | {t for t in public_tlds() if not t.isascii()}


def _unicode_label(label: str) -> str:
    if label.lower().startswith("xn--"):
        try:
            return label.encode("ascii").decode("idna").lower()
        except (UnicodeError, ValueError):
            return ""
    return label.lower()


def valid_host(host: str, *, common: bool = False) -> bool:
    """A host name of at least two labels whose last label is a known TLD."""
    if len(host) > MAX_HOST or "." not in host:
        return False
    labels = host.split(".")
    if not all(LABEL.fullmatch(label) for label in labels):
        return False
    tld = _unicode_label(labels[-1])
    if not tld or tld.isdigit():
        return False
    return tld in (common_tlds() if common else public_tlds())


def cut_tld(host: str) -> str:
    """`例子.中国请回复` -> `例子.中国`: in CJK text the prose runs on into the last label.

    Only a last label in a script written without spaces is cut, at the longest known TLD
    it starts with.
    """
    head, _, last = host.rpartition(".")
    if not head or last.isascii() or last.lower() in public_tlds():
        return host
    for end in range(len(last) - 1, 0, -1):
        if last[:end].lower() in public_tlds():
            return f"{head}.{last[:end]}"
    return host
