"""make_token(**overrides): a signed test token; pass a claim as None to leave it out."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt

TEST_SECRET = "test-secret-" + "x" * 40
TEST_ISSUER = "https://idp.example.com"
TEST_AUDIENCE = "privacy-gateway"
OMIT = None


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    base: dict[str, Any] = {
        "sub": "svc-crm", "iss": TEST_ISSUER, "aud": TEST_AUDIENCE, "iat": now,
        # hours, not minutes: modules make some tokens at collection, and a slow run of the
        # whole suite must not outlive them
        "exp": now + 4 * 3600, "scope": "audit:read", "roles": [],
    }
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not OMIT}


def make_token(*, key: Any = TEST_SECRET, algorithm: str = "HS256",
               headers: dict[str, Any] | None = None, **overrides: Any) -> str:
    return jwt.encode(claims(**overrides), key, algorithm=algorithm, headers=headers)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def raw_token(header: dict[str, Any], payload: dict[str, Any], *, hmac_key: bytes | None = None,
              signature: bytes = b"") -> str:
    """Build a token by hand, for headers and keys PyJWT would refuse to produce."""
    signing_input = f"{_b64(json.dumps(header).encode())}.{_b64(json.dumps(payload).encode())}"
    if hmac_key is not None:
        signature = hmac.new(hmac_key, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{_b64(signature)}"
