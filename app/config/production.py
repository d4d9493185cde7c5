"""What production refuses: outside development the service refuses insecure or missing values
at start-up and names the variable, so a misconfigured deployment never serves a request."""

from __future__ import annotations

import math
from collections import Counter

from app.config.settings import (
    DEV_ISSUER,
    MIN_HMAC_SECRET_BITS,
    MIN_HMAC_SECRET_BYTES,
    ConfigError,
    Settings,
)


def _shannon_bits(symbols: list[int]) -> float:
    counts = Counter(symbols)
    return -sum(n * math.log2(n / len(symbols)) for n in counts.values())


def _entropy_bits(secret: str) -> float:
    """An estimate of the secret's entropy: the Shannon entropy of its characters, and of the
    steps between them (so `abcd...` and `aaaa...` both score low), whichever is less. Only a
    screen for patterns; secrets made of words can still pass it."""
    codes = [ord(c) for c in secret]
    steps = [b - a for a, b in zip(codes, codes[1:], strict=False)]
    return min(_shannon_bits(codes), _shannon_bits(steps) if steps else 0.0)


def _jwt_secret_problems(settings: Settings) -> list[str]:
    secret = settings.jwt_secret.get_secret_value() if settings.jwt_secret else ""
    if not secret:
        return ["PGW_JWT_SECRET is required in prod when an HS algorithm is accepted "
                "(PGW_JWT_ALGORITHMS)"]
    if len(secret.encode()) < MIN_HMAC_SECRET_BYTES:
        return [f"PGW_JWT_SECRET must be at least {MIN_HMAC_SECRET_BYTES} bytes in prod"]
    if _entropy_bits(secret) < MIN_HMAC_SECRET_BITS:
        return ["PGW_JWT_SECRET is too predictable (too few different characters) for prod; "
                "generate one, e.g. `openssl rand -base64 48`"]
    if settings.dev_jwt_secret_file.exists() and (
        settings.dev_jwt_secret_file.read_text().strip() == secret
    ):
        return ["PGW_JWT_SECRET is the generated development secret"]
    return []


def production_problems(settings: Settings) -> list[str]:
    """Every setting that is unsafe for production, each naming its variable (none in dev)."""
    if settings.is_dev:
        return []
    found: list[str] = []
    if settings.sqlalchemy_url.startswith("sqlite") and not settings.allow_sqlite_in_prod:
        found.append("PGW_DATABASE_URL: prod runs on PostgreSQL; set "
                     "PGW_ALLOW_SQLITE_IN_PROD=true to run a single process on SQLite")
    if settings.token_issuer == DEV_ISSUER:
        found.append("PGW_JWT_ISSUER must be set to your identity provider's issuer in prod")
    if settings.uses_hmac:
        found += _jwt_secret_problems(settings)
    if settings.uses_asymmetric and not (settings.jwt_public_key_file or settings.jwt_jwks_file
                                         or settings.remote_keys):
        found.append("PGW_JWT_PUBLIC_KEY_FILE or PGW_JWT_JWKS_FILE is required in prod "
                     "when an asymmetric algorithm is accepted")
    if settings.sms_webhook_url and not settings.sms_webhook_secret:
        found.append("PGW_SMS_WEBHOOK_SECRET is required in prod when PGW_SMS_WEBHOOK_URL is "
                     "set: the SMS gateway checks the signature of each code it is sent")
    for name, path in (
        ("PGW_JWT_PUBLIC_KEY_FILE", settings.jwt_public_key_file),
        ("PGW_JWT_JWKS_FILE", settings.jwt_jwks_file),
    ):
        if path is not None and not path.is_file():
            found.append(f"{name} points to {path}, which does not exist")
    for name, path in (
        ("PGW_AUDIT_SIGNING_KEY_FILE", settings.audit_key_file),
        ("PGW_RECEIPT_SIGNING_KEY_FILE", settings.receipt_key_file),
    ):
        if not path.is_file():
            found.append(f"{name}: no signing key at {path}; create it with `pgw init`")
    return found


def check_production(settings: Settings) -> None:
    """Raise ConfigError listing every setting that is unsafe for production."""
    found = production_problems(settings)
    if found:
        raise ConfigError(*found)
