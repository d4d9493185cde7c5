"""Bearer-token verification with PyJWT.

The accepted algorithms are a fixed list from settings; the token's header only selects among
them. The verification key is chosen by algorithm family, so an HS256 token is never checked
against an RSA public key used as an HMAC secret. `jku` and `x5u` headers are never followed:
keys come only from the configured secret, PEM file, local JWKS file, or the identity provider
named by PGW_OIDC_ISSUER or PGW_JWT_JWKS_URL (see app/auth/jwks.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import secrets
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import jwt
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from app.auth.jwks import AuthMetrics, JwksCache
from app.config import HMAC_ALGORITHMS, Settings
from app.errors import ServiceUnavailable, Unauthorized
from app.keys import files

REQUIRED_CLAIMS = ("sub", "exp", "iat", "iss", "aud")
MAX_TOKEN_LENGTH = 8192
MAX_SUBJECT_LENGTH = 255
MAX_KID_LENGTH = 256
# Actor names the gateway gives its own processes and pages (`system:dsr`, `operator:alice`,
# `privacy-centre`): a token naming one would act as them, e.g. read the exports they filed.
RESERVED_SUBJECTS = ("system:", "operator:", "privacy-centre")
VERIFIED_CACHE_SIZE = 4096
VERIFIED_CACHE_SECONDS = 30


class TokenConfigError(Exception):
    """The verification keys could not be loaded; the message names the setting."""


class KeysUnavailable(ServiceUnavailable):
    type, title = "identity-provider-unavailable", "Identity provider keys unavailable"


@dataclass(frozen=True)
class Claims:
    sub: str
    scopes: frozenset[str]
    roles: tuple[str, ...]
    raw: dict[str, Any] = field(repr=False)


class VerifiedTokens:
    """Tokens verified lately, by their SHA-256, with the key that verified them. A client
    sends the same token with every request: until it expires, 30 s pass, or its header
    selects another key than the one it was checked with (a key set refreshed or changed),
    the signature and claims are not checked again. Only successes are kept; bounded."""

    def __init__(self) -> None:
        self._seen: dict[bytes, tuple[Claims, Any, float]] = {}
        self._lock = threading.Lock()

    def get(self, token: str, key: Any) -> Claims | None:
        found = self._seen.get(hashlib.sha256(token.encode()).digest())
        if found is None or found[1] is not key or found[2] <= time.time():
            return None
        return found[0]

    def put(self, token: str, key: Any, claims: Claims, *, valid_until: float) -> None:
        until = min(valid_until, time.time() + VERIFIED_CACHE_SECONDS)
        with self._lock:
            while len(self._seen) >= VERIFIED_CACHE_SIZE:
                del self._seen[next(iter(self._seen))]  # the oldest
            self._seen[hashlib.sha256(token.encode()).digest()] = (claims, key, until)


@dataclass(frozen=True)
class TokenVerifier:
    algorithms: tuple[str, ...]
    issuer: str
    audience: str
    leeway: int
    max_lifetime: int = 86400
    hmac_secret: bytes | None = field(default=None, repr=False)
    public_key: Any = field(default=None, repr=False)
    jwks: dict[str, jwt.PyJWK] = field(default_factory=dict, repr=False)
    key_set: JwksCache | None = None
    roles_claim: str = "roles"
    scopes_claim: str = "scope"
    metrics: AuthMetrics | None = None
    verified: VerifiedTokens = field(default_factory=VerifiedTokens, repr=False, compare=False)

    async def prepare(self, token: str) -> None:
        """Refetch the identity provider's keys first if the token names a key id they lack
        (rate-limited); malformed tokens are left for `verify` to refuse."""
        if self.key_set is None or not token or len(token) > MAX_TOKEN_LENGTH:
            return
        try:
            header = _header(token)
        except Unauthorized:
            return
        kid, alg = header.get("kid"), header.get("alg")
        if isinstance(kid, str) and 0 < len(kid) <= MAX_KID_LENGTH and kid not in self.jwks \
                and alg in self.algorithms and alg not in HMAC_ALGORITHMS:
            await self.key_set.prepare(kid)

    def verify(self, token: str) -> Claims:
        alg, key = self._signing_key(token, what="token")
        cached = self.verified.get(token, key)
        if cached is not None:
            return cached
        payload = self._decode(token, alg, key, what="token", audience=self.audience,
                               issuer=self.issuer, require=REQUIRED_CLAIMS)
        claims = _claims(payload, max_lifetime=self.max_lifetime, roles_claim=self.roles_claim,
                         scopes_claim=self.scopes_claim)
        # PyJWT accepts the token until `exp` plus the leeway
        self.verified.put(token, key, claims, valid_until=float(payload["exp"]) + self.leeway)
        return claims

    def verify_id_token(self, token: str, *, issuer: str, client_id: str,
                        nonce: str) -> dict[str, Any]:
        """An OpenID Connect ID token's claims, once its signature (the provider's keys), `iss`,
        `aud` (our client id), `exp` and `nonce` (the one this sign-in sent) check out."""
        alg, key = self._signing_key(token, what="ID token", provider_only=True)
        payload = self._decode(token, alg, key, what="ID token", audience=client_id,
                               issuer=issuer, require=(*REQUIRED_CLAIMS, "nonce"))
        given = payload["nonce"]
        if not isinstance(given, str) or not secrets.compare_digest(given.encode(),
                                                                    nonce.encode()):
            raise Unauthorized("the ID token's nonce is not this sign-in's")
        return payload

    def _signing_key(self, token: str, *, what: str,
                     provider_only: bool = False) -> tuple[str, Any]:
        """The algorithm a JWT names and the key to check it with, once its size and header
        are acceptable; `provider_only` refuses the development HMAC secret."""
        if not token or len(token) > MAX_TOKEN_LENGTH:
            raise Unauthorized(f"malformed {what}")
        header = _header(token)
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms or (
                provider_only and alg in HMAC_ALGORITHMS):
            raise Unauthorized(f"{what} algorithm is not accepted")
        if "crit" in header:
            raise Unauthorized(f"{what} has a critical header this service does not understand")
        return alg, self._key_for(alg, header.get("kid"))

    def _decode(self, token: str, alg: str, key: Any, *, what: str, audience: str | None,
                issuer: str | None, require: Iterable[str]) -> dict[str, Any]:
        """The payload of a JWT whose signature and registered claims check out, or
        Unauthorized naming what did not (`what` names the token)."""
        try:
            payload: dict[str, Any] = jwt.decode(
                token, key=key, algorithms=[alg], audience=audience, issuer=issuer,
                leeway=self.leeway, options={"require": list(require)})
        except jwt.ExpiredSignatureError:
            raise Unauthorized(f"{what} has expired") from None
        except jwt.ImmatureSignatureError:
            raise Unauthorized(f"{what} is not valid yet") from None
        except jwt.MissingRequiredClaimError as exc:
            raise Unauthorized(f"{what} lacks the required claim {exc.claim!r}") from None
        except jwt.InvalidAudienceError:
            raise Unauthorized(f"{what} is not meant for this service (audience)") from None
        except jwt.InvalidIssuerError:
            raise Unauthorized(f"{what} issuer is not trusted") from None
        except jwt.InvalidSignatureError:
            raise Unauthorized(f"{what} signature does not verify") from None
        except (jwt.PyJWTError, ValueError, TypeError):
            raise Unauthorized(f"{what} is invalid") from None
        return payload

    def _key_for(self, alg: str, kid: object) -> Any:
        if alg in HMAC_ALGORITHMS:
            if self.hmac_secret is None:
                raise Unauthorized("token algorithm is not accepted")
            return self.hmac_secret
        if kid is not None:
            if not isinstance(kid, str):
                raise Unauthorized("token key id is unknown")
            if kid in self.jwks:
                return self.jwks[kid].key
            return self._remote_key(alg, kid)
        if self.public_key is None:
            raise Unauthorized("token key id is missing")
        return self.public_key


    def _remote_key(self, alg: str, kid: str) -> Any:
        if self.key_set is None:
            raise Unauthorized("token key id is unknown")
        if not self.key_set.loaded:
            raise KeysUnavailable(f"the identity provider's signing keys are not loaded yet "
                                  f"({self.key_set.setting}); try again shortly",
                                  headers={"Retry-After": "5"})
        key = self.key_set.get(kid)
        if key is None:
            raise Unauthorized("token key id is unknown")
        if not key.fits(alg):
            raise Unauthorized("token algorithm does not match its key")
        return key.key


def _header(token: str) -> dict[str, Any]:
    """The JOSE header, parsed strictly; signature and claims are PyJWT's job afterwards."""
    segments = token.split(".")
    if len(segments) != 3:
        raise Unauthorized("malformed token")
    try:
        raw = base64.urlsafe_b64decode(segments[0] + "=" * (-len(segments[0]) % 4))
        header = json.loads(raw)
    except (ValueError, binascii.Error):
        raise Unauthorized("malformed token") from None
    if not isinstance(header, dict):
        raise Unauthorized("malformed token")
    return header


def _number(payload: dict[str, Any], name: str) -> float:
    value = payload[name]
    # PyJWT accepts "1700000000" as a time; a time claim is a NumericDate (RFC 7519 §2)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Unauthorized(f"token claim {name!r} must be a number")
    return float(value)


def claim_at(payload: dict[str, Any], path: str) -> Any:
    """The value at a dotted path (`realm_access.roles`), or None where the path ends early."""
    value: Any = payload
    for name in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(name)
    return value


def _scopes(payload: dict[str, Any], path: str) -> frozenset[str]:
    value = claim_at(payload, path)
    if value is None:
        return frozenset()
    if isinstance(value, str):
        return frozenset(value.split())
    if isinstance(value, list) and all(isinstance(s, str) for s in value):
        return frozenset(value)
    raise Unauthorized(f"token claim {path!r} (PGW_JWT_SCOPES_CLAIM) must be a space-separated "
                       "string or a list of strings")


def _roles(payload: dict[str, Any], path: str) -> tuple[str, ...]:
    value = claim_at(payload, path)
    if value is None:
        return ()
    if isinstance(value, list) and all(isinstance(r, str) for r in value):
        return tuple(dict.fromkeys(value))
    raise Unauthorized(f"token claim {path!r} (PGW_JWT_ROLES_CLAIM) must be a list of strings")


def _claims(payload: dict[str, Any], *, max_lifetime: int, roles_claim: str = "roles",
            scopes_claim: str = "scope") -> Claims:
    issued, expires = _number(payload, "iat"), _number(payload, "exp")
    if "nbf" in payload:
        _number(payload, "nbf")
    if expires - issued > max_lifetime:
        raise Unauthorized(f"token lives longer than {max_lifetime} s "
                           "(PGW_JWT_MAX_LIFETIME_SECONDS)")
    sub = payload["sub"]
    if not isinstance(sub, str) or not sub or len(sub) > MAX_SUBJECT_LENGTH:
        raise Unauthorized("token subject is invalid")
    if sub.startswith(RESERVED_SUBJECTS):
        raise Unauthorized("token subject is reserved for the gateway's own actors")
    return Claims(sub=sub, scopes=_scopes(payload, scopes_claim),
                  roles=_roles(payload, roles_claim), raw=payload)


def dev_secret(settings: Settings, *, create: bool) -> bytes:
    """The HMAC secret: PGW_JWT_SECRET, or in dev a generated one kept in the data dir."""
    if settings.jwt_secret is not None:
        return settings.jwt_secret.get_secret_value().encode()
    if not settings.is_dev:
        raise TokenConfigError("PGW_JWT_SECRET is required for HS algorithms outside dev")
    try:
        return files.read_or_create(
            settings.dev_jwt_secret_file,
            generate=lambda: secrets.token_urlsafe(48).encode(),
            create=create,
        ).strip()
    except files.KeyFileError as exc:
        raise TokenConfigError(f"PGW_JWT_SECRET: {exc}") from None


def remote_key_set(settings: Settings, metrics: AuthMetrics | None = None) -> JwksCache | None:
    """The cache of the identity provider's keys, not fetched yet (`refresh` does)."""
    if not settings.remote_keys:
        return None
    return JwksCache(issuer=settings.oidc_issuer, jwks_url=settings.jwt_jwks_url,
                     dev=settings.is_dev, timeout=settings.jwks_fetch_timeout_seconds,
                     max_cache_seconds=settings.jwks_cache_seconds,
                     min_interval=settings.jwks_refresh_min_interval_seconds, metrics=metrics)


def provider_problems(settings: Settings) -> list[str]:
    """For `pgw check`: fetch the identity provider's keys once, as start-up would; why they
    cannot be had, or nothing (also when no provider is configured)."""
    key_set = remote_key_set(settings)
    if key_set is None or key_set.refresh("check"):
        return []
    return [key_set.last_error or f"{key_set.setting}: the keys cannot be fetched"]


def load_verifier(settings: Settings, *, create_dev_secret: bool = True,
                  metrics: AuthMetrics | None = None) -> TokenVerifier:
    """The verifier; keys from an identity provider are fetched later, by the caller, since
    loading must not wait on the network (see `remote_key_set`)."""
    hmac_secret = dev_secret(settings, create=create_dev_secret) if settings.uses_hmac else None
    public_key = None
    if settings.jwt_public_key_file is not None:
        try:
            public_key = load_pem_public_key(settings.jwt_public_key_file.read_bytes())
        except (OSError, ValueError) as exc:
            raise TokenConfigError(f"PGW_JWT_PUBLIC_KEY_FILE: cannot load a public key ({exc})")\
                from None
    jwks = _load_jwks(settings) if settings.jwt_jwks_file is not None else {}
    return TokenVerifier(
        algorithms=settings.jwt_algorithms,
        issuer=settings.token_issuer,
        audience=settings.jwt_audience,
        leeway=settings.jwt_leeway_seconds,
        max_lifetime=settings.jwt_max_lifetime_seconds,
        hmac_secret=hmac_secret,
        public_key=public_key,
        jwks=jwks,
        key_set=remote_key_set(settings, metrics),
        roles_claim=settings.jwt_roles_claim,
        scopes_claim=settings.jwt_scopes_claim,
        metrics=metrics,
    )


def _load_jwks(settings: Settings) -> dict[str, jwt.PyJWK]:
    assert settings.jwt_jwks_file is not None  # noqa: S101
    try:
        document = json.loads(settings.jwt_jwks_file.read_text())
        keys = {}
        for entry in document["keys"]:
            kid = entry.get("kid")
            if not isinstance(kid, str) or not kid:
                raise ValueError("every key needs a string 'kid'")
            if "d" in entry:
                raise ValueError(f"key {kid!r} holds private material; publish public keys only")
            keys[kid] = jwt.PyJWK(entry)
    except (OSError, ValueError, KeyError, TypeError, jwt.PyJWTError) as exc:
        raise TokenConfigError(f"PGW_JWT_JWKS_FILE: cannot load the key set ({exc})") from None
    return keys


def issue_dev_token(settings: Settings, *, sub: str, scopes: Iterable[str],
                    roles: Iterable[str], ttl: int) -> str:
    """A token signed with the development HMAC secret; refused outside dev."""
    if not settings.is_dev:
        raise TokenConfigError("development tokens are refused when PGW_ENV=prod")
    now = int(time.time())
    payload = {
        "sub": sub,
        "iss": settings.jwt_issuer,
        "aud": settings.jwt_audience,
        "iat": now,
        "nbf": now,
        "exp": now + ttl,
        "scope": " ".join(scopes),
        "roles": list(roles),
    }
    return jwt.encode(payload, dev_secret(settings, create=True), algorithm="HS256")
