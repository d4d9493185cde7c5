"""The JWT rejection matrix, case by case, against a real uvicorn."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from app.config import Settings
from app.main import create_app
from tests.server import LiveServer
from tests.tokens import OMIT, claims, make_token, raw_token

ROUTE = "/v1/audit/checkpoints"


def assert_unauthorized(server: LiveServer, token: str, reason_part: str | None = None) -> None:
    response = server.client(token).get(ROUTE)
    assert response.status_code == 401, response.text
    body = response.json()
    assert response.headers["content-type"] == "application/problem+json"
    assert body["type"] == "urn:pgw:problem:unauthorized"
    assert body["status"] == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    if reason_part:
        assert reason_part in body["detail"]


@pytest.fixture(scope="module")
def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def rsa_public_pem(rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> Path:
    path = tmp_path / "idp.pem"
    path.write_bytes(rsa_key.public_key().public_bytes(Encoding.PEM,
                                                       PublicFormat.SubjectPublicKeyInfo))
    return path


def test_valid_token_is_accepted(live: LiveServer) -> None:
    response = live.client(make_token()).get(ROUTE)
    assert response.status_code == 200
    assert response.json() == {"items": [], "next": None}


@pytest.mark.parametrize("alg", ["none", "None", "NONE", "nOnE"])
def test_alg_none_in_any_case_is_rejected(live: LiveServer, alg: str) -> None:
    assert_unauthorized(live, raw_token({"alg": alg, "typ": "JWT"}, claims()), "algorithm")


@pytest.mark.parametrize("missing", ["exp", "iat", "iss", "aud", "sub"])
def test_missing_required_claim_is_rejected(live: LiveServer, missing: str) -> None:
    omitted: dict[str, Any] = {missing: OMIT}
    assert_unauthorized(live, make_token(**omitted), missing)


def test_unknown_crit_header_is_rejected(live: LiveServer) -> None:
    token = make_token(headers={"crit": ["x-pgw-unknown"], "x-pgw-unknown": True})
    assert_unauthorized(live, token, "critical header")


def test_expiry_honours_the_leeway(live: LiveServer) -> None:
    now = int(time.time())
    assert live.client(make_token(exp=now - 10)).get(ROUTE).status_code == 200
    assert_unauthorized(live, make_token(exp=now - 31), "expired")


def test_not_before_in_the_future_is_rejected(live: LiveServer) -> None:
    assert_unauthorized(live, make_token(nbf=int(time.time()) + 120), "not valid yet")


def test_wrong_audience_is_rejected(live: LiveServer) -> None:
    assert_unauthorized(live, make_token(aud="another-service"), "audience")


@pytest.mark.parametrize("issuer", [
    "https://idp.example.co",            # prefix of the real issuer
    "https://idp.example.com.evil.test",  # extension of it
    "https://idp.example.com/",           # one character longer
    "HTTPS://IDP.EXAMPLE.COM",
])
def test_issuer_must_match_exactly(live: LiveServer, issuer: str) -> None:
    assert_unauthorized(live, make_token(iss=issuer), "issuer")


def test_bad_signature_is_rejected(live: LiveServer) -> None:
    assert_unauthorized(live, make_token(key="another-secret-" + "y" * 40), "signature")


@pytest.mark.parametrize("token", [
    "abc", "a.b", "a.b.c", "a.b.c.d", "eyJhbGciOiJIUzI1NiJ9.!!!.sig",
    raw_token({"alg": "HS256"}, claims())[:-3],
    "W10.e30.c2ln",  # header is a JSON array
    "x" * 9000,
])
def test_malformed_tokens_are_rejected(live: LiveServer, token: str) -> None:
    response = live.client().get(ROUTE, headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 401
    assert response.json()["status"] == 401


@pytest.mark.parametrize("header", [None, "Basic dXNlcjpwYXNz", "Bearer", "Token abc"])
def test_missing_or_other_scheme_is_rejected(live: LiveServer, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = live.client().get(ROUTE, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize(("sub", "roles", "scope"), [
    ("", ["a"], "audit:read"), ("x" * 300, ["a"], "audit:read"), (42, ["a"], "audit:read"),
    ("svc", "admin", "audit:read"), ("svc", [1], "audit:read"), ("svc", [], [1]),
    ("svc", [], {"audit:read": True}), ("svc", {"role": "x"}, "audit:read"),
])
def test_malformed_claims_are_rejected(live: LiveServer, sub: Any, roles: Any,
                                       scope: Any) -> None:
    assert_unauthorized(live, make_token(sub=sub, roles=roles, scope=scope))


@pytest.mark.parametrize("sub", ["system:dsr", "operator:alice", "privacy-centre"])
def test_subjects_of_the_gateways_own_actors_are_refused(live: LiveServer, sub: str) -> None:
    """A token naming `privacy-centre` would otherwise read the exports the centre filed."""
    assert_unauthorized(live, make_token(sub=sub, scope="audit:read dsr:submit"), "reserved")


def test_valid_token_without_the_scope_gets_403(live: LiveServer) -> None:
    response = live.client(make_token(scope="records:read consent:read")).get(ROUTE)
    assert response.status_code == 403
    body = response.json()
    assert body["type"] == "urn:pgw:problem:insufficient-scope"
    assert body["required_scope"] == "audit:read"


# -- asymmetric keys: key confusion, JWKS and kid ------------------------------------------------

def _rs256_settings(make_settings: Callable[..., Settings], algorithms: str,
                    **extra: Any) -> Settings:
    return make_settings(jwt_algorithms=algorithms, **extra)


@pytest.mark.parametrize("algorithms", ["RS256", "HS256,RS256"])
def test_hs256_signed_with_the_rsa_public_key_is_rejected(
    make_settings: Callable[..., Settings], start_server: Callable[..., LiveServer],
    rsa_key: rsa.RSAPrivateKey, rsa_public_pem: Path, algorithms: str,
) -> None:
    server = start_server(create_app(_rs256_settings(make_settings, algorithms,
                                                     jwt_public_key_file=rsa_public_pem)))
    genuine = make_token(key=rsa_key, algorithm="RS256")
    assert server.client(genuine).get(ROUTE).status_code == 200
    forged = raw_token({"alg": "HS256", "typ": "JWT"}, claims(),
                       hmac_key=rsa_public_pem.read_bytes())
    assert_unauthorized(server, forged)


@pytest.fixture
def jwks_server(make_settings: Callable[..., Settings], start_server: Callable[..., LiveServer],
                rsa_key: rsa.RSAPrivateKey, tmp_path: Path) -> LiveServer:
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(rsa_key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**jwk, "kid": "k1",
                                                               "alg": "RS256"}]}))
    settings = make_settings(jwt_algorithms="RS256,ES256", jwt_jwks_file=tmp_path / "jwks.json")
    return start_server(create_app(settings))


def test_jwks_key_chosen_by_kid(jwks_server: LiveServer, rsa_key: rsa.RSAPrivateKey) -> None:
    token = make_token(key=rsa_key, algorithm="RS256", headers={"kid": "k1"})
    assert jwks_server.client(token).get(ROUTE).status_code == 200


@pytest.mark.parametrize("kid", ["k2", "../../../../etc/passwd", "k1/../k1", "/dev/null", ""])
def test_kid_not_in_jwks_is_rejected(jwks_server: LiveServer, rsa_key: rsa.RSAPrivateKey,
                                     kid: str) -> None:
    token = make_token(key=rsa_key, algorithm="RS256", headers={"kid": kid})
    assert_unauthorized(jwks_server, token, "key id")


def test_algorithm_not_matching_the_key_is_rejected(jwks_server: LiveServer) -> None:
    attacker = ec.generate_private_key(ec.SECP256R1())
    token = make_token(key=attacker, algorithm="ES256", headers={"kid": "k1"})
    assert_unauthorized(jwks_server, token)


class CountingListener:
    """A loopback socket that counts connection attempts: jku/x5u must never reach it."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.sock.settimeout(0.2)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/jwks.json"
        self.hits = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.hits += 1
            conn.close()

    def close(self) -> None:
        self._stop = True
        self._thread.join()
        self.sock.close()


@pytest.mark.parametrize("header", ["jku", "x5u"])
def test_jku_and_x5u_are_never_followed(jwks_server: LiveServer, header: str) -> None:
    listener = CountingListener()
    try:
        attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        token = make_token(key=attacker, algorithm="RS256",
                           headers={"kid": "attacker", header: listener.url})
        assert_unauthorized(jwks_server, token)
        time.sleep(0.3)
        assert listener.hits == 0
    finally:
        listener.close()


def test_hs_secret_never_used_for_asymmetric_tokens(live: LiveServer) -> None:
    # HS256-only deployment: an RS256 token is refused before any key is looked at.
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert_unauthorized(live, make_token(key=key, algorithm="RS256"), "algorithm")
