"""Outside development the service refuses to start on unsafe settings, naming the variable."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from app.config import ConfigError, Settings, check_production
from app.main import create_app
from tests.tokens import TEST_ISSUER

PROD_SECRET = "q7Vd0-LkT3pX9wYbR2mZ8sNcH4fJ6gA1eU5iO"  # random-looking, 37 characters


@pytest.fixture
def prod(make_settings: Callable[..., Settings], tmp_path: Path) -> Callable[..., Settings]:
    key = tmp_path / "audit.pem"
    key.write_text("placeholder")
    receipts = tmp_path / "receipts.pem"
    receipts.write_text("placeholder")

    def make(**overrides: object) -> Settings:
        values = {"env": "prod", "jwt_issuer": TEST_ISSUER, "jwt_secret": PROD_SECRET,
                  "audit_signing_key_file": key, "receipt_signing_key_file": receipts,
                  "allow_sqlite_in_prod": True, **overrides}
        return make_settings(**values)

    return make


def test_safe_production_settings_pass(prod: Callable[..., Settings]) -> None:
    check_production(prod())


@pytest.mark.parametrize(("overrides", "variable"), [
    ({"jwt_issuer": "pgw-dev"}, "PGW_JWT_ISSUER"),
    ({"jwt_secret": None}, "PGW_JWT_SECRET"),
    ({"jwt_secret": "short"}, "PGW_JWT_SECRET"),
    ({"jwt_secret": "a" * 32}, "PGW_JWT_SECRET is too predictable"),
    ({"jwt_secret": "ab" * 24}, "PGW_JWT_SECRET is too predictable"),
    ({"jwt_secret": "abcdefghijklmnopqrstuvwxyz0123456789"}, "PGW_JWT_SECRET is too predictable"),
    ({"jwt_algorithms": "RS256", "jwt_secret": None}, "PGW_JWT_PUBLIC_KEY_FILE"),
    ({"jwt_algorithms": "RS256", "jwt_public_key_file": Path("/nonexistent.pem")},
     "PGW_JWT_PUBLIC_KEY_FILE"),
    ({"audit_signing_key_file": Path("/nonexistent.pem")}, "PGW_AUDIT_SIGNING_KEY_FILE"),
    ({"receipt_signing_key_file": Path("/nonexistent.pem")}, "PGW_RECEIPT_SIGNING_KEY_FILE"),
])
def test_unsafe_production_settings_are_refused(prod: Callable[..., Settings],
                                                overrides: dict[str, object],
                                                variable: str) -> None:
    with pytest.raises(ConfigError, match=variable):
        create_app(prod(**overrides))


def test_generated_dev_secret_is_refused_in_prod(prod: Callable[..., Settings]) -> None:
    settings = prod()
    settings.data_dir.mkdir(parents=True)
    settings.dev_jwt_secret_file.write_text(PROD_SECRET)
    with pytest.raises(ConfigError, match="PGW_JWT_SECRET is the generated development secret"):
        check_production(prod())


def test_sqlite_in_prod_needs_saying_so(prod: Callable[..., Settings], tmp_path: Path) -> None:
    on_sqlite = {"database_url": f"sqlite:///{tmp_path / 'prod.sqlite3'}"}
    with pytest.raises(ConfigError, match="PGW_ALLOW_SQLITE_IN_PROD"):
        check_production(prod(allow_sqlite_in_prod=False, **on_sqlite))
    check_production(prod(allow_sqlite_in_prod=True, **on_sqlite))


def test_unknown_algorithm_is_refused(make_settings: Callable[..., Settings]) -> None:
    with pytest.raises(ValueError, match="unsupported algorithm"):
        make_settings(jwt_algorithms="HS256,none")


def test_algorithms_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PGW_JWT_ALGORITHMS", "RS256, ES256,EdDSA")
    assert Settings().jwt_algorithms == ("RS256", "ES256", "EdDSA")


def test_default_database_is_sqlite_in_the_data_dir(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path: Path) -> None:
    monkeypatch.delenv("PGW_DATABASE_URL", raising=False)
    monkeypatch.setenv("PGW_DATA_DIR", str(tmp_path))
    assert Settings().sqlalchemy_url == f"sqlite:///{tmp_path.resolve()}/pgw.sqlite3"
