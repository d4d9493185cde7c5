"""Where a webhook may be delivered: the defence against server-side request forgery.

A subscriber's URL is checked twice. At registration, for its form (http(s), no credentials, no
control characters) and for hosts that are internal on their face (a literal loopback, private
or link-local address in any spelling, `localhost`, cloud metadata names). At delivery, the host
is resolved once, every address is judged by the `ipaddress` module's own classification, and
the connection goes to an address that was judged, never to a second lookup's answer (a name
that first resolves to a public address and then to 127.0.0.1 gains nothing). The operator's
allow-list (PGW_WEBHOOK_ALLOW_HOSTS) names the hosts and networks that may be internal.
"""

from __future__ import annotations

import concurrent.futures
import ipaddress
import re
import socket
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Instance metadata services that the address classes below do not already cover (Oracle's
# 192.0.0.192 and Azure's wire server count as global) or that stay refused even inside an
# allowed network: only an allow-list entry naming the address itself lets them through.
METADATA_ADDRESSES = frozenset(ipaddress.ip_address(a) for a in (
    "169.254.169.254", "169.254.170.2", "100.100.100.200", "192.0.0.192", "168.63.129.16",
    "fd00:ec2::254"))
METADATA_NAMES = frozenset({"metadata", "metadata.google.internal", "metadata.goog",
                            "instance-data", "instance-data.ec2.internal"})
INTERNAL_SUFFIXES = (".localhost", ".local", ".localdomain", ".internal", ".home.arpa")
# RFC 6052 and RFC 8215: NAT64 translates these to the IPv4 address in their last 32 bits.
NAT64_PREFIXES = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_HOST_NAME = re.compile(r"[a-z0-9-]+(\.[a-z0-9-]+)*")  # lower case; xn-- for other scripts


class Refused(ValueError):
    """The URL or one of its host's addresses may not receive webhooks; says why."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str  # lower case, without a trailing dot; an IPv6 literal without brackets
    port: int
    path: str  # with the query; never empty
    address: IPAddress | None  # the host, when it is a literal address


@dataclass(frozen=True)
class AllowList:
    hosts: frozenset[str]
    networks: tuple[IPNetwork, ...]

    def allows_host(self, host: str) -> bool:
        return host in self.hosts

    def allows(self, address: IPAddress) -> bool:
        if address in METADATA_ADDRESSES:
            return any(n.num_addresses == 1 and address in n for n in self.networks)
        return any(address in n for n in self.networks)


@lru_cache(maxsize=8)
def allow_list(entries: tuple[str, ...]) -> AllowList:
    """Parse PGW_WEBHOOK_ALLOW_HOSTS: host names, addresses and CIDR networks."""
    hosts, networks = set(), []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
        except ValueError:
            hosts.add(entry.lower().rstrip("."))
    return AllowList(hosts=frozenset(hosts), networks=tuple(networks))


def parse(url: str, *, require_https: bool) -> Target:
    """The URL's parts, or Refused for anything but a plain absolute http(s) URL."""
    bad = next((ch for ch in url if unicodedata.category(ch)[0] in "CZ" or ch == "\\"), None)
    if bad is not None:
        raise Refused(f"url must not contain control characters, spaces or backslashes "
                      f"(found U+{ord(bad):04X})")
    if not url.isascii():
        raise Refused("url must be ASCII: write a domain name in its xn-- form and "
                      "percent-encode the path")
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. an unclosed IPv6 bracket
        raise Refused("url must be an absolute http(s) URL") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise Refused("url must be an absolute http(s) URL")
    if require_https and parts.scheme != "https":
        raise Refused("url must use https in production")
    if "@" in parts.netloc:
        raise Refused("url must not carry credentials; verify the signature instead")
    try:
        port = parts.port
    except ValueError:
        raise Refused("url has an invalid port") from None
    if port is None:
        port = 443 if parts.scheme == "https" else 80
    elif port == 0:
        raise Refused("url has an invalid port")
    host = parts.hostname.rstrip(".")
    bracketed = "[" in parts.netloc
    if bracketed != (":" in host) or not (bracketed or _HOST_NAME.fullmatch(host)):
        raise Refused("url's host must be a domain name, a dotted-quad IPv4 address or an "
                      "IPv6 address in brackets")
    path = parts.path or "/"
    if parts.query:
        path += f"?{parts.query}"
    return Target(scheme=parts.scheme, host=host, port=port, path=path,
                  address=_literal(host))


def _literal(host: str) -> IPAddress | None:
    """The host as an address if it is one. A host whose last label is a number is an IPv4
    address to resolvers (`2130706433`, `0x7f000001`, `127.1`, `0177.0.0.1` all reach
    127.0.0.1): only the dotted-quad spelling is accepted, so what is checked is what is used."""
    if ":" in host:
        try:
            return ipaddress.IPv6Address(host)
        except ValueError:
            raise Refused("url's host is not a valid IPv6 address") from None
    last = host.rsplit(".", 1)[-1]
    if last.isdigit() or last[:2] in ("0x", "0X"):
        try:
            return ipaddress.IPv4Address(host)
        except ValueError:
            raise Refused(f"url's host {host!r} is a number but not a dotted-quad IPv4 "
                          "address (a.b.c.d, decimal, no leading zeros)") from None
    return None


def refusal(address: IPAddress, allow: AllowList) -> str | None:
    """Why `address` may not receive webhooks, or None when it may."""
    if allow.allows(address):
        return None
    if address in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:  # judged by the IPv4 address it reaches
            reason = refusal(embedded, allow)
            return None if reason is None else f"{reason} (as {embedded})"
    for reason, flag in (("a loopback address", address.is_loopback),
                         ("an unspecified address", address.is_unspecified),
                         ("a link-local address", address.is_link_local),
                         ("a multicast address", address.is_multicast),
                         ("a private address", address.is_private),
                         ("a reserved address", address.is_reserved),
                         ("a site-local address", getattr(address, "is_site_local", False)),
                         ("not a globally reachable address", not address.is_global)):
        if flag:
            return reason
    return None


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in prefix for prefix in NAT64_PREFIXES):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return address.sixtofour


def check_registration(url: str, *, allow: AllowList, require_https: bool) -> Target:
    """Refused unless `url` is well-formed and its host is not internal on its face."""
    target = parse(url, require_https=require_https)
    if allow.allows_host(target.host):
        return target
    if target.address is not None:
        reason = refusal(target.address, allow)
        if reason is not None:
            raise Refused(f"url's host {target.address} is {reason}; name it in "
                          "PGW_WEBHOOK_ALLOW_HOSTS to deliver there")
    elif (target.host in METADATA_NAMES or target.host == "localhost"
          or target.host.endswith(INTERNAL_SUFFIXES) or "." not in target.host):
        raise Refused(f"url's host {target.host!r} is an internal name; name it in "
                      "PGW_WEBHOOK_ALLOW_HOSTS to deliver there")
    return target


_LOOKUPS = concurrent.futures.ThreadPoolExecutor(max_workers=4, thread_name_prefix="pgw-dns")


def lookup(host: str, port: int) -> list[IPAddress]:
    """Every address of `host` (one DNS lookup)."""
    infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0])
                              for info in infos))


def resolve(target: Target, *, allow: AllowList, timeout: float) -> list[IPAddress]:
    """The addresses to connect to, each checked; Refused if any of them is refused."""
    if target.address is not None:
        addresses = [target.address]
    else:
        # getaddrinfo has no timeout of its own: a lookup that outlives the delivery's
        # deadline is abandoned to its thread
        try:
            addresses = _LOOKUPS.submit(lookup, target.host, target.port).result(timeout)
        except concurrent.futures.TimeoutError:
            raise Refused(f"{target.host!r} could not be resolved within {timeout:g} s") \
                from None
        except (OSError, UnicodeError) as exc:
            raise Refused(f"{target.host!r} could not be resolved ({type(exc).__name__})") \
                from None
        if not addresses:
            raise Refused(f"{target.host!r} has no address")
    if allow.allows_host(target.host):
        return addresses
    for address in addresses:
        reason = refusal(address, allow)
        if reason is not None:
            raise Refused(f"{target.host} resolves to {address}, {reason}; name it in "
                          "PGW_WEBHOOK_ALLOW_HOSTS to deliver there")
    return addresses
