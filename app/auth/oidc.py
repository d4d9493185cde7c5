"""Fetching the signing keys of the operator's own identity provider.

These are the service's only outbound calls, made only when PGW_OIDC_ISSUER or PGW_JWT_JWKS_URL
is set. Each is bounded: https only (plain http only to loopback in development, for tests and
a local Keycloak), no redirects, a timeout for the whole exchange and a cap on the response size.
Whatever comes back is parsed strictly; a key set holding private key material is refused.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx
import jwt

logger = logging.getLogger("pgw.auth.oidc")

MAX_DOCUMENT_BYTES = 512 * 1024  # Entra's key set is about 10 kB
DISCOVERY_PATH = "/.well-known/openid-configuration"
_MAX_AGE = re.compile(r"(?:^|,)\s*max-age\s*=\s*\"?(\d+)\"?\s*(?:,|$)", re.IGNORECASE)
_KEY_TYPES = {"RSA": ("RS", "PS"), "EC": ("ES",), "OKP": ("EdDSA",)}


class FetchError(Exception):
    """The keys could not be fetched or were not acceptable; the message names the setting and
    never quotes the response body."""


@dataclass(frozen=True)
class SigningKey:
    key: Any  # a cryptography public key
    kty: str
    alg: str | None  # the algorithm the key set names for it, if any

    def fits(self, alg: str) -> bool:
        """Whether a token signed with `alg` may be checked with this key: the key's own
        `alg` if named, otherwise its type's family (RS/PS for RSA, ES for EC, EdDSA for OKP)."""
        if self.alg is not None:
            return self.alg == alg
        return alg.startswith(_KEY_TYPES[self.kty])


@dataclass(frozen=True)
class KeySet:
    keys: dict[str, SigningKey]
    max_age: int | None  # the response's Cache-Control max-age, if it gave one


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def url_problem(url: str, *, dev: bool) -> str | None:
    """Why `url` may not be fetched, or None: https, or http to loopback in development."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return "not a valid URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an https:// URL"
    if parts.username or parts.password or parts.fragment:
        return "must not carry credentials or a fragment"
    if parts.scheme == "http" and not (dev and _loopback(host)):
        return "must use https (plain http is allowed only to loopback with PGW_ENV=dev)"
    return None


def max_age(cache_control: str | None) -> int | None:
    """The max-age of a Cache-Control header; 0 for no-cache or no-store."""
    if not cache_control:
        return None
    if re.search(r"\bno-(cache|store)\b", cache_control, re.IGNORECASE):
        return 0
    found = _MAX_AGE.search(cache_control)
    return int(found.group(1)) if found else None


def get_json(url: str, *, setting: str, dev: bool, timeout: float,
             ) -> tuple[dict[str, Any], str | None]:
    """GET a JSON object, bounded in time and size; the object and the Cache-Control header."""
    problem = url_problem(url, dev=dev)
    if problem:
        raise FetchError(f"{setting}: {url}: {problem}")
    deadline = time.monotonic() + timeout
    body = bytearray()
    try:
        with httpx.Client(timeout=timeout, follow_redirects=False) as client, \
                client.stream("GET", url, headers={"Accept": "application/json"}) as response:
            if response.status_code != 200:
                raise FetchError(f"{setting}: {url} answered HTTP {response.status_code}")
            for chunk in response.iter_bytes():
                body += chunk
                if len(body) > MAX_DOCUMENT_BYTES:
                    raise FetchError(f"{setting}: {url} sent more than "
                                     f"{MAX_DOCUMENT_BYTES} bytes")
                if time.monotonic() > deadline:
                    raise FetchError(f"{setting}: {url} did not answer within {timeout:g} s")
            cache_control = response.headers.get("cache-control")
    except httpx.TimeoutException:
        raise FetchError(f"{setting}: {url} did not answer within {timeout:g} s") from None
    except httpx.HTTPError as exc:
        raise FetchError(f"{setting}: {url} cannot be reached ({type(exc).__name__})") from None
    try:
        document = json.loads(body)
    except ValueError:
        raise FetchError(f"{setting}: {url} did not answer with JSON") from None
    if not isinstance(document, dict):
        raise FetchError(f"{setting}: {url} did not answer with a JSON object")
    return document, cache_control


def discover_jwks_uri(issuer: str, *, dev: bool, timeout: float) -> str:
    """The `jwks_uri` of the issuer's discovery document, which must name the same issuer."""
    url = issuer.rstrip("/") + DISCOVERY_PATH
    document, _ = get_json(url, setting="PGW_OIDC_ISSUER", dev=dev, timeout=timeout)
    if document.get("issuer") != issuer:
        found = document.get("issuer")
        shown = repr(found[:200]) if isinstance(found, str) else "no issuer"
        raise FetchError(f"PGW_OIDC_ISSUER: the discovery document at {url} names {shown}, "
                         f"not {issuer!r}; set PGW_OIDC_ISSUER to exactly the issuer it names")
    jwks_uri = document.get("jwks_uri")
    if not isinstance(jwks_uri, str) or not jwks_uri:
        raise FetchError(f"PGW_OIDC_ISSUER: the discovery document at {url} has no jwks_uri")
    return jwks_uri


def parse_key_set(document: dict[str, Any], *, source: str) -> dict[str, SigningKey]:
    """Public signing keys by `kid`. Keys for encryption, symmetric keys, keys without a kid and
    key types PyJWT cannot use are left out; a private key refuses the whole set."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise FetchError(f"{source}: the key set has no 'keys' list")
    keys: dict[str, SigningKey] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        if any(name in entry for name in ("d", "p", "q", "k")):
            raise FetchError(f"{source}: the key set holds private or symmetric key material; "
                             "refusing all of it")
        kid, kty = entry.get("kid"), entry.get("kty")
        if not isinstance(kid, str) or not kid or kty not in _KEY_TYPES:
            continue
        if entry.get("use", "sig") != "sig" or kid in keys:
            continue
        alg = entry.get("alg")
        try:
            keys[kid] = SigningKey(key=jwt.PyJWK(entry).key, kty=kty,
                                   alg=alg if isinstance(alg, str) else None)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):
            logger.info("%s: key %r is not usable here; left out", source, kid[:64])
    if not keys:
        raise FetchError(f"{source}: the key set has no usable signing key")
    return keys


def fetch_key_set(jwks_uri: str, *, setting: str, dev: bool, timeout: float) -> KeySet:
    document, cache_control = get_json(jwks_uri, setting=setting, dev=dev, timeout=timeout)
    return KeySet(keys=parse_key_set(document, source=f"{setting}: {jwks_uri}"),
                  max_age=max_age(cache_control))
