"""Tokens from real-shaped identity providers (Keycloak, Entra, Okta), their keys fetched from a
fake provider on loopback by the gateway under a real uvicorn: discovery, rotation, outages,
rate-limited refreshes on unknown key ids, claim paths and unknown roles."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from app.config import DEV_ISSUER, Settings
from app.main import create_app
from tests.auth.fake_idp import FakeIdP
from tests.server import LiveServer, metric
from tests.tokens import make_token

ROUTE = "/v1/audit/checkpoints"  # needs the scope audit:read
Gateway = Callable[..., LiveServer]


@pytest.fixture
def idp() -> Iterator[FakeIdP]:
    provider = FakeIdP()
    yield provider
    provider.stop()


@pytest.fixture
def gateway(make_settings: Callable[..., Settings],
            start_server: Callable[..., LiveServer]) -> Gateway:
    """gateway(**settings): the gateway on loopback, trusting an identity provider."""

    def start(**overrides: Any) -> LiveServer:
        return start_server(create_app(make_settings(**{"jwt_issuer": DEV_ISSUER, **overrides})))

    return start


def keycloak_claims(*roles: str, **extra: Any) -> dict[str, Any]:
    return {"sub": str(uuid.uuid4()), "aud": ["privacy-gateway", "account"], "typ": "Bearer",
            "azp": "crm-backend", "preferred_username": "alice",
            "realm_access": {"roles": [*roles, "offline_access", "uma_authorization",
                                       "default-roles-pgw"]},
            "resource_access": {"account": {"roles": ["manage-account"]}},
            "scope": "openid profile email audit:read", **extra}


KEYCLOAK = {"jwt_roles_claim": "realm_access.roles",
            "jwt_ignored_roles": "offline_access,uma_authorization,default-roles-pgw"}


def get(server: LiveServer, token: str, path: str = ROUTE) -> httpx.Response:
    return server.client(token).get(path)


def assert_problem(response: httpx.Response, status: int, type_: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = dict(response.json())
    assert body["type"] == f"urn:pgw:problem:{type_}"
    return body


# -- three providers' token shapes --------------------------------------------------------------

def test_keycloak_token_with_realm_roles(idp: FakeIdP, gateway: Gateway) -> None:
    server = gateway(oidc_issuer=idp.issuer, **KEYCLOAK)
    assert idp.discovery_hits() == 1  # fetched at start-up
    assert idp.jwks_hits() == 1
    response = get(server, idp.token(keycloak_claims("compliance_officer")))
    assert response.status_code == 200, response.text
    assert metric(server, "pgw_jwks_keys") == 1
    # an HS256 token with the old shared secret is no longer accepted: only the IdP's keys
    assert get(server, make_token(iss=idp.issuer)).status_code == 401


def test_entra_token_with_scp_string_and_roles_list(gateway: Gateway) -> None:
    tenant = str(uuid.uuid4())
    entra = FakeIdP(f"/{tenant}/v2.0", publish_alg=False)  # Entra's keys name no alg
    try:
        client_id = str(uuid.uuid4())
        server = gateway(oidc_issuer=entra.issuer, jwt_audience=client_id,
                         jwt_scopes_claim="scp", jwt_roles_claim="roles")
        token = entra.token({"sub": "AAAAAAAAAAAAAAAAAAAAAIkzqFVrSaSaFHy782bbtaQ", "aud": client_id,
                             "tid": tenant, "oid": str(uuid.uuid4()), "ver": "2.0",
                             "scp": "records:read audit:read", "roles": ["compliance_officer"]})
        assert get(server, token).status_code == 200
        no_scope = entra.token({"sub": "s", "aud": client_id, "scp": "records:read",
                                "roles": ["compliance_officer"]})
        body = assert_problem(get(server, no_scope), 403, "insufficient-scope")
        assert body["required_scope"] == "audit:read"
    finally:
        entra.stop()


def test_okta_token_with_scp_list_and_groups_by_jwks_url(gateway: Gateway) -> None:
    okta = FakeIdP("/oauth2/default")
    try:
        server = gateway(jwt_jwks_url=okta.jwks_uri,
                         jwt_audience="api://privacy-gateway", jwt_issuer=okta.issuer,
                         jwt_scopes_claim="scp", jwt_roles_claim="groups")
        assert okta.discovery_hits() == 0  # the JWKS URL is used as given
        claims = {"sub": "alice@example.com", "aud": "api://privacy-gateway", "cid": "0oa1",
                  "uid": "00u1", "scp": ["audit:read", "records:read"],
                  "groups": ["compliance_officer"]}
        assert get(server, okta.token(claims)).status_code == 200
        wrong = okta.token({**claims, "scp": [1]})
        body = assert_problem(get(server, wrong), 401, "unauthorized")
        assert "'scp'" in body["detail"]
    finally:
        okta.stop()


@pytest.mark.parametrize("alg", ["ES256", "PS256", "EdDSA"])
def test_other_algorithms_from_the_key_set(gateway: Gateway, alg: str) -> None:
    provider = FakeIdP(alg=alg)
    try:
        server = gateway(oidc_issuer=provider.issuer, **KEYCLOAK)
        assert get(server, provider.token(keycloak_claims())).status_code == 200
    finally:
        provider.stop()


def test_token_algorithm_must_fit_its_key(idp: FakeIdP, gateway: Gateway) -> None:
    server = gateway(oidc_issuer=idp.issuer, **KEYCLOAK)
    key, _ = idp.keys["k1"]
    now = int(time.time())
    # RS256 key published for RS256: a PS256 token signed by the very same key is refused
    token = jwt.encode({**keycloak_claims(), "iss": idp.issuer, "iat": now, "exp": now + 60},
                       key, algorithm="PS256", headers={"kid": "k1"})
    body = assert_problem(get(server, token), 401, "unauthorized")
    assert "does not match its key" in body["detail"]


# -- discovery ------------------------------------------------------------------------------------

def test_discovery_naming_another_issuer_is_refused(idp: FakeIdP, gateway: Gateway) -> None:
    idp.discovery_issuer = "https://evil.example/realms/pgw"
    server = gateway(oidc_issuer=idp.issuer, **KEYCLOAK)
    assert idp.discovery_hits() == 1
    assert idp.jwks_hits() == 0  # keys of an issuer we do not trust are never fetched
    response = get(server, idp.token(keycloak_claims()))
    body = assert_problem(response, 503, "identity-provider-unavailable")
    assert "PGW_OIDC_ISSUER" in body["detail"]
    assert response.headers["retry-after"] == "5"
    assert metric(server, "pgw_jwks_refreshes_total", reason="startup", outcome="failed") == 1


def test_provider_down_at_start_up_is_retried(idp: FakeIdP, gateway: Gateway) -> None:
    idp.available = False
    server = gateway(oidc_issuer=idp.issuer, **KEYCLOAK)
    assert server.client().get("/healthz").status_code == 200  # it started anyway
    token = idp.token(keycloak_claims())
    assert_problem(get(server, token), 503, "identity-provider-unavailable")
    ready = server.client().get("/readyz")  # no token can be verified: not ready, and why
    assert ready.status_code == 503
    assert any("PGW_OIDC_ISSUER" in reason for reason in ready.json()["reasons"]), ready.json()
    idp.available = True
    deadline = time.monotonic() + 15  # retried after 1 s, then 2 s, ...
    while get(server, token).status_code != 200:
        assert time.monotonic() < deadline, "the keys were not fetched after the provider came up"
        time.sleep(0.2)
    assert server.client().get("/readyz").json()["reasons"] == []
    assert metric(server, "pgw_jwks_refreshes_total", reason="startup", outcome="ok") == 1


# -- rotation, outages and floods ----------------------------------------------------------------

def test_rotated_key_is_accepted_without_restart(idp: FakeIdP, gateway: Gateway) -> None:
    server = gateway(oidc_issuer=idp.issuer, **KEYCLOAK)
    old = idp.token(keycloak_claims(), kid="k1")
    assert get(server, old).status_code == 200
    idp.rotate("k2")  # k1 withdrawn, k2 published
    new = idp.token(keycloak_claims(), kid="k2")
    assert get(server, new).status_code == 200
    assert idp.jwks_hits() == 2  # start-up, then the unknown kid
    body = assert_problem(get(server, old), 401, "unauthorized")  # withdrawn keys go too
    assert "key id" in body["detail"]
    assert metric(server, "pgw_jwks_refreshes_total", reason="unknown_kid", outcome="ok") == 1


def test_provider_down_keeps_serving_on_cached_keys(idp: FakeIdP, gateway: Gateway) -> None:
    server = gateway(oidc_issuer=idp.issuer, **KEYCLOAK)
    token = idp.token(keycloak_claims())
    unknown = _foreign_token(idp, kid="k-next")
    idp.stop()
    assert get(server, token).status_code == 200
    assert_problem(get(server, unknown), 401, "unauthorized")  # its refresh fails...
    assert metric(server, "pgw_jwks_refreshes_total", reason="unknown_kid",
                  outcome="failed") == 1
    assert get(server, token).status_code == 200  # ...and the cached keys stay
    assert metric(server, "pgw_jwks_keys") == 1


def _foreign_token(idp: FakeIdP, *, kid: str, key: rsa.RSAPrivateKey | None = None) -> str:
    """A token for the provider's issuer, signed by a key it never published."""
    now = int(time.time())
    key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return jwt.encode({**keycloak_claims(), "iss": idp.issuer, "iat": now, "exp": now + 60},
                      key, algorithm="RS256", headers={"kid": kid})


def test_unknown_kid_flood_refetches_at_most_once(idp: FakeIdP, gateway: Gateway) -> None:
    server = gateway(oidc_issuer=idp.issuer, jwks_refresh_min_interval_seconds=30, **KEYCLOAK)
    forger = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    tokens = [_foreign_token(idp, kid=f"forged-{i}", key=forger) for i in range(40)]

    def call(token: str) -> int:
        with server.client(token) as client:
            return client.get(ROUTE).status_code

    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(call, tokens))
    assert statuses == [401] * 40
    assert idp.jwks_hits() == 2  # start-up, then one refresh for the whole flood
    assert metric(server, "pgw_jwks_refresh_throttled_total") == 39
    assert get(server, idp.token(keycloak_claims())).status_code == 200


# -- roles --------------------------------------------------------------------------------------

def test_unknown_role_is_refused_naming_it(idp: FakeIdP, gateway: Gateway) -> None:
    server = gateway(oidc_issuer=idp.issuer, **KEYCLOAK)
    typo = idp.token(keycloak_claims("support-agent", sub="agent-7"))
    body = assert_problem(get(server, typo), 403, "unknown-role")
    assert body["unknown_roles"] == ["support-agent"]
    assert "'support-agent' (did you mean 'support_agent'?)" in body["detail"]
    assert metric(server, "pgw_auth_unknown_roles_total", handling="refused") == 1
    auditor = idp.token(keycloak_claims("compliance_officer"))
    entries = get(server, auditor, "/v1/audit?action=auth.unknown_role").json()["items"]
    assert [(e["actor"], e["outcome"], e["details"]) for e in entries] == [
        ("agent-7", "denied", {"unknown_roles": ["support-agent"]})]


def test_unknown_role_ignored_by_configuration(idp: FakeIdP, gateway: Gateway) -> None:
    server = gateway(oidc_issuer=idp.issuer, jwt_unknown_roles="ignore", **KEYCLOAK)
    response = get(server, idp.token(keycloak_claims("support-agent", "compliance_officer")))
    assert response.status_code == 200
    assert metric(server, "pgw_auth_unknown_roles_total", handling="ignored") == 1
    entries = get(server, idp.token(keycloak_claims("compliance_officer")),
                  "/v1/audit?action=auth.unknown_role").json()["items"]
    assert entries == []


def test_provider_roles_not_listed_as_ignored_are_unknown(idp: FakeIdP,
                                                          gateway: Gateway) -> None:
    server = gateway(oidc_issuer=idp.issuer, jwt_roles_claim="realm_access.roles")
    body = assert_problem(get(server, idp.token(keycloak_claims("compliance_officer"))),
                          403, "unknown-role")
    assert body["unknown_roles"] == ["offline_access", "uma_authorization", "default-roles-pgw"]
