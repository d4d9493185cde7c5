"""Verified tokens are remembered (by hash) for the next request with the same token, never past
the token's expiry and never once its header selects another key."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from app.auth.tokens import TokenVerifier
from app.errors import Unauthorized
from tests.server import LiveServer
from tests.tokens import TEST_AUDIENCE, TEST_ISSUER, claims, make_token

ROUTE = "/v1/audit/checkpoints"


def test_a_remembered_token_still_expires_with_the_leeway(live: LiveServer) -> None:
    token = make_token(exp=int(time.time()) - 28)  # the leeway is 30 s: 2 s left
    client = live.client(token)
    assert client.get(ROUTE).status_code == 200
    assert client.get(ROUTE).status_code == 200
    time.sleep(3)
    response = client.get(ROUTE)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]


def _jwk(key: ec.EllipticCurvePrivateKey, kid: str) -> jwt.PyJWK:
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    return jwt.PyJWK(public | {"kid": kid, "alg": "ES256"})


def test_a_token_is_checked_again_when_its_key_changed() -> None:
    first, second = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    verifier = TokenVerifier(algorithms=("ES256",), issuer=TEST_ISSUER, audience=TEST_AUDIENCE,
                             leeway=30, jwks={"k1": _jwk(first, "k1")})
    token = jwt.encode(claims(sub="svc-a"), first, algorithm="ES256", headers={"kid": "k1"})
    assert verifier.verify(token).sub == "svc-a"
    assert verifier.verify(token).sub == "svc-a"  # remembered
    verifier.jwks["k1"] = _jwk(second, "k1")  # the key set now has another key under k1
    with pytest.raises(Unauthorized, match="signature"):
        verifier.verify(token)
    verifier.jwks.clear()
    with pytest.raises(Unauthorized, match="unknown"):
        verifier.verify(token)


def test_only_successes_are_remembered() -> None:
    verifier = TokenVerifier(algorithms=("HS256",), issuer=TEST_ISSUER, audience=TEST_AUDIENCE,
                             leeway=30, hmac_secret=b"s" * 48)
    wrong = make_token(key="w" * 48)
    for _ in range(2):
        with pytest.raises(Unauthorized, match="signature"):
            verifier.verify(wrong)
    good = make_token(key="s" * 48, sub="svc-b")
    assert verifier.verify(good).sub == verifier.verify(good).sub == "svc-b"
