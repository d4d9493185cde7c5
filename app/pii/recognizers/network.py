"""IP addresses and URLs: a linear-time scan for candidates, then validation in code.

Presidio's URL pattern backtracks for a minute on 100,000 characters of "a.a.a...", and its
IP pattern needs `\\b`, which CJK text does not have (地址2001:db8::1). Each pattern here is
bounded by a look-behind and uses possessive quantifiers, so no position is scanned twice;
what a pattern cannot express (valid octets, one `::`, a known TLD) is checked afterwards.
"""

from __future__ import annotations

import ipaddress

import regex

from app.pii.recognizers.base import Span, SpanRecognizer
from app.pii.recognizers.domains import cut_tld, valid_host

IP_SCORE = 0.6
UNSPECIFIED_SCORE = 0.1  # "::" alone is as often a C++ scope or an emoticon as an address
URL_SCORE = 0.6
BARE_URL_SCORE = 0.5
IP_CONTEXT = ("ip", "ipv4", "ipv6", "address", "server", "host", "地址", "服务器", "主机")
URL_CONTEXT = ("url", "website", "link", "site", "网址", "链接", "网站", "地址")

_V = regex.VERSION1
IPV4 = regex.compile(
    r"(?<![0-9A-Za-z.])(?:[0-9]{1,3}+\.){3}[0-9]{1,3}+(?![0-9A-Za-z])"
    r"(?:/([0-9]{1,2}+)(?![0-9A-Za-z]))?", _V)
IPV6 = regex.compile(
    r"(?<![0-9A-Za-z_:.%])(?=[0-9A-Fa-f]{0,4}+:)[0-9A-Fa-f:.]++"
    r"(%[0-9A-Za-z_\-]++)?(?:/([0-9]{1,3}+))?(?![0-9A-Za-z_])", _V)
# What a URL may not start right after: a word it would be the tail of, an e-mail's "@".
SCHEME_URL = regex.compile(
    r"(?<![A-Za-z0-9+.\-])(?i:https?|ftp)://([\p{L}\p{N}\-]++(?:\.[\p{L}\p{N}\-]++)*+)", _V)
BARE_URL = regex.compile(
    r"(?<![\p{Latin}\p{Cyrillic}\p{Greek}\p{N}_.@%+\-/\\:])"
    r"([A-Za-z0-9\-]++(?:\.[A-Za-z0-9\-]++)++)(?![@\p{Latin}\p{N}])", _V)
URL_TAIL = regex.compile(
    r"(?::[0-9]{1,5}+)?(?:[/?#][^\s<>\"'()\[\]{}\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}"
    r"，。、；：！？（）《》【】「」]*+)?", _V)
TRAILING = ".,;:!?'\"-"


class IpRecognizer(SpanRecognizer):
    def __init__(self, language: str):
        super().__init__(name="IpRecognizer", entity="IP_ADDRESS", language=language,
                         context=IP_CONTEXT)

    def find(self, text: str) -> list[Span]:
        spans = [span for match in IPV6.finditer(text) if (span := _ipv6(match)) is not None]
        for match in IPV4.finditer(text):
            if any(start <= match.start() < end for start, end, _ in spans):
                continue  # the IPv4 tail of an IPv6 address already found
            if (span := _ipv4(match)) is not None:
                spans.append(span)
        return spans


def _ipv4(match: regex.Match[str]) -> tuple[int, int, float] | None:
    address = match.group()
    prefix = match.group(1)
    if prefix is not None:
        address = address.partition("/")[0]
    try:
        ipaddress.IPv4Address(address)
    except ValueError:
        return None
    end = match.end() if prefix is not None and int(prefix) <= 32 else \
        match.start() + len(address)
    return match.start(), end, IP_SCORE


def _ipv6(match: regex.Match[str]) -> tuple[int, int, float] | None:
    address = match.group().split("%", 1)[0].split("/", 1)[0]
    zone, prefix = match.group(1), match.group(2)
    if zone is None and prefix is None:
        # a sentence may end right after the address: "fe80::1." or "fe80::1:"
        while address.endswith(".") or (address.endswith(":") and not address.endswith("::")):
            address = address[:-1]
    elif address.endswith("."):
        return None
    if not _valid_ipv6(address):
        return None
    end = match.start() + len(address)
    if zone is not None:
        end += len(zone)
    if prefix is not None and int(prefix) <= 128:
        end += 1 + len(prefix)
    score = UNSPECIFIED_SCORE if address == "::" else IP_SCORE
    return match.start(), end, score


def _valid_ipv6(address: str) -> bool:
    if address != "::" and not any(c.isdigit() for c in address):
        return False  # a::b, dead::beef: words and scopes, not addresses
    try:
        ipaddress.IPv6Address(address)
    except ValueError:
        return False
    return True


class UrlRecognizer(SpanRecognizer):
    """URLs with a scheme (any host name), and bare host names that end in a common TLD."""

    def __init__(self, language: str):
        super().__init__(name="UrlRecognizer", entity="URL", language=language,
                         context=URL_CONTEXT)

    def find(self, text: str) -> list[Span]:
        spans = []
        for match in SCHEME_URL.finditer(text):
            host = cut_tld(match.group(1).rstrip("-"))
            if valid_host(host):
                spans.append((match.start(), _url_end(text, match.start(1) + len(host)),
                              URL_SCORE))
        with_scheme = list(spans)
        for match in BARE_URL.finditer(text):
            if any(start <= match.start() < end for start, end, _ in with_scheme):
                continue
            host = match.group(1).rstrip("-")
            if valid_host(host, common=True):
                spans.append((match.start(), _url_end(text, match.start(1) + len(host)),
                              BARE_URL_SCORE))
        return spans


def _url_end(text: str, host_end: int) -> int:
    tail = URL_TAIL.match(text, host_end)
    end = tail.end() if tail else host_end
    while end > host_end and text[end - 1] in TRAILING:
        end -= 1
    return end
