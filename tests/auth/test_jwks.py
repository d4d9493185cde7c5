"""The key-set cache and its fetches, below HTTP: URL rules, size and time bounds, cache
lifetimes, and the settings that name an identity provider."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from pydantic import ValidationError

from app.auth import oidc
from app.auth.jwks import JwksCache
from app.auth.oidc import FetchError
from app.config import ASYMMETRIC_ALGORITHMS, Settings
from tests.auth.fake_idp import FakeIdP


@pytest.fixture
def idp() -> Iterator[FakeIdP]:
    provider = FakeIdP()
    yield provider
    provider.stop()


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_cache(idp: FakeIdP, **overrides: Any) -> JwksCache:
    values: dict[str, Any] = {"issuer": idp.issuer, "jwks_url": None, "dev": True,
                              "timeout": 2.0, "max_cache_seconds": 900, "min_interval": 30,
                              "clock": Clock()}
    values.update(overrides)
    return JwksCache(**values)


@pytest.mark.parametrize(("url", "dev", "problem"), [
    ("https://login.example.com/realms/x", False, None),
    ("http://127.0.0.1:8080/realms/x", True, None),
    ("http://localhost:8080/realms/x", True, None),
    ("http://[::1]:8080/realms/x", True, None),
    ("http://127.0.0.1:8080/realms/x", False, "must use https"),
    ("http://keycloak.internal/realms/x", True, "must use https"),
    ("ftp://login.example.com/x", False, "https:// URL"),
    ("https://user:pw@login.example.com/x", False, "credentials"),
    ("login.example.com", False, "https:// URL"),
])
def test_url_rules(url: str, dev: bool, problem: str | None) -> None:
    found = oidc.url_problem(url, dev=dev)
    assert (found is None) if problem is None else (problem in (found or ""))


def test_settings_refuse_plain_http_to_a_provider_in_prod() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(env="prod", oidc_issuer="http://keycloak.internal/realms/pgw")
    assert "PGW_OIDC_ISSUER: must use https" in str(caught.value)


def test_settings_refuse_two_key_sources() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(oidc_issuer="https://idp.example/x", jwt_jwks_url="https://idp.example/k")
    assert "PGW_OIDC_ISSUER and PGW_JWT_JWKS_URL" in str(caught.value)


def test_settings_default_to_asymmetric_algorithms_for_a_provider() -> None:
    settings = Settings(oidc_issuer="https://idp.example/realms/pgw")
    assert set(settings.jwt_algorithms) == ASYMMETRIC_ALGORITHMS
    assert not settings.uses_hmac
    assert settings.token_issuer == "https://idp.example/realms/pgw"
    v1 = Settings(oidc_issuer="https://login.example/t/v2.0", jwt_issuer="https://sts.example/t/")
    assert v1.token_issuer == "https://sts.example/t/"  # Entra v1 tokens name another issuer
    assert Settings(oidc_issuer="https://i.example", jwt_algorithms="RS256").jwt_algorithms \
        == ("RS256",)


@pytest.mark.parametrize("path", ["", "realm_access.", ".roles", "a..b"])
def test_settings_refuse_bad_claim_paths(path: str) -> None:
    with pytest.raises(ValidationError, match="claim path"):
        Settings(jwt_roles_claim=path)


def test_discovery_then_key_set(idp: FakeIdP) -> None:
    cache = make_cache(idp)
    assert cache.problems() == ["PGW_OIDC_ISSUER: the identity provider's keys are not "
                                "fetched yet"]
    assert cache.refresh("startup")
    assert cache.problems() == []
    assert cache.loaded
    assert sorted(cache.keys) == ["k1"]
    assert cache.get("k1") is not None
    assert (idp.discovery_hits(), idp.jwks_hits()) == (1, 1)
    assert cache.refresh("scheduled")
    assert (idp.discovery_hits(), idp.jwks_hits()) == (1, 2)  # jwks_uri remembered


def test_response_larger_than_the_cap_is_refused(idp: FakeIdP) -> None:
    idp.big = True
    with pytest.raises(FetchError, match=f"more than {oidc.MAX_DOCUMENT_BYTES} bytes"):
        oidc.fetch_key_set(idp.jwks_uri, setting="PGW_JWT_JWKS_URL", dev=True, timeout=5)


def test_slow_provider_is_given_up_on_within_the_timeout(idp: FakeIdP) -> None:
    idp.delay = 3
    started = time.monotonic()
    with pytest.raises(FetchError, match="did not answer within 0.5 s"):
        oidc.fetch_key_set(idp.jwks_uri, setting="PGW_JWT_JWKS_URL", dev=True, timeout=0.5)
    assert time.monotonic() - started < 2


@pytest.mark.parametrize(("entry", "reason"), [
    ({"kty": "RSA", "kid": "x", "n": "AQAB", "e": "AQAB", "d": "AQAB"}, "private"),
    ({"kty": "oct", "kid": "x", "k": "c2VjcmV0"}, "symmetric"),
])
def test_key_set_with_secret_material_is_refused_whole(entry: dict[str, str],
                                                       reason: str) -> None:
    with pytest.raises(FetchError, match=reason):
        oidc.parse_key_set({"keys": [entry]}, source="PGW_JWT_JWKS_URL")


def test_encryption_and_kidless_keys_are_left_out(idp: FakeIdP) -> None:
    good = idp.key_set()["keys"][0]
    found = oidc.parse_key_set({"keys": [
        {**good, "kid": "enc", "use": "enc"}, {**good, "kid": ""}, "junk", good,
        {**good, "alg": "RSA-OAEP", "kid": "oaep"}]}, source="test")
    assert sorted(found) == ["k1"]
    with pytest.raises(FetchError, match="no usable signing key"):
        oidc.parse_key_set({"keys": [{**good, "use": "enc"}]}, source="test")


@pytest.mark.parametrize(("header", "ttl"), [
    (None, 900), ("no-cache", 900), ("public, max-age=120", 120),
    ("max-age=5", 60), ("public, max-age=86400", 900),
])
def test_cache_lifetime_honours_max_age_within_bounds(idp: FakeIdP, header: str | None,
                                                     ttl: int) -> None:
    idp.cache_control = header
    cache = make_cache(idp)
    assert cache.refresh("startup")
    assert cache.next_refresh_in() == ttl
    cache.clock.now += ttl  # type: ignore[attr-defined]
    assert cache.next_refresh_in() == 0


def test_scheduled_refresh_picks_up_rotation_and_survives_outage(idp: FakeIdP) -> None:
    cache = make_cache(idp)
    assert cache.refresh("startup")
    idp.rotate("k2", keep=True)
    assert cache.refresh("scheduled")
    assert sorted(cache.keys) == ["k1", "k2"]
    idp.available = False
    assert not cache.refresh("scheduled")
    assert sorted(cache.keys) == ["k1", "k2"]  # kept
    assert cache.next_refresh_in() == 1  # retried soon, backing off
    assert not cache.refresh("scheduled")
    assert cache.next_refresh_in() == 2
    assert "PGW_OIDC_ISSUER" in (cache.last_error or "")


def test_unknown_kid_refresh_is_rate_limited(idp: FakeIdP) -> None:
    cache = make_cache(idp)
    assert cache.refresh("startup")
    cache.refresh_for("k-new")
    assert idp.jwks_hits() == 2
    assert not cache.claim("k-other")  # within the 30 s
    cache.refresh_for("k-other")
    assert idp.jwks_hits() == 2
    cache.clock.now += 30  # type: ignore[attr-defined]
    cache.refresh_for("k-other")
    assert idp.jwks_hits() == 3
    cache.clock.now += 30  # type: ignore[attr-defined]
    assert not cache.claim("k1")  # known: nothing to fetch


def test_no_caller_waits_behind_a_slow_refresh(idp: FakeIdP) -> None:
    cache = make_cache(idp)
    assert cache.refresh("startup")
    idp.delay = 1.5
    slow = threading.Thread(target=cache.refresh_for, args=("k-new",))
    slow.start()
    while not cache._in_flight:  # the slow refetch has claimed its turn
        time.sleep(0.01)
    started = time.monotonic()
    cache.clock.now += 60  # type: ignore[attr-defined]  # the rate limit would allow one
    cache.refresh_for("k-other")  # but one is under way: judged on the keys there are
    assert time.monotonic() - started < 0.5  # not the 1.5 s the fetch takes
    slow.join()
    assert idp.jwks_hits() == 2


def test_check_reports_a_provider_naming_another_issuer(idp: FakeIdP,
                                                        tmp_path: Any) -> None:
    from app.auth.tokens import provider_problems

    settings = Settings(data_dir=tmp_path, oidc_issuer=idp.issuer)
    assert provider_problems(settings) == []
    idp.discovery_issuer = idp.issuer + "/"
    [problem] = provider_problems(settings)
    assert problem.startswith("PGW_OIDC_ISSUER: the discovery document at ")
    assert f"names {idp.issuer + '/'!r}, not {idp.issuer!r}" in problem
