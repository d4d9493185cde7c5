"""Production settings for `pgw check`: keys made by `pgw init`, tokens from an identity
provider whose key set is a file; and a deployment with the README's three database roles."""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
import psycopg
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, generate_private_key

from app.config import Settings
from app.db import upgrade
from app.ops import setup
from tests.databases import DatabaseFactory, _admin_dsn, as_role, login_roles

IDP_ISSUER = "https://idp.example.com/realms/pgw"


def identity_provider(tmp_path: Path) -> tuple[dict[str, str], RSAPrivateKey]:
    """Settings for an issuer whose public key set is a file, and its private key."""
    key = generate_private_key(public_exponent=65537, key_size=2048)
    public = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    (tmp_path / "jwks.json").write_text(json.dumps({"keys": [{**public, "kid": "k1"}]}))
    return {"PGW_JWT_ALGORITHMS": "RS256", "PGW_JWT_ISSUER": IDP_ISSUER,
            "PGW_JWT_JWKS_FILE": str(tmp_path / "jwks.json")}, key


@pytest.fixture
def prod_settings(tmp_path: Path, make_settings: Callable[..., Settings],
                  ) -> Callable[..., Settings]:
    """Prod settings whose keys `pgw init` made and whose tokens an identity provider signs:
    nothing but the database is left for `pgw check` to find."""
    idp, _ = identity_provider(tmp_path)

    def make(**overrides: Any) -> Settings:
        settings = make_settings(env="prod", jwt_issuer=IDP_ISSUER, jwt_algorithms=("RS256",),
                                 jwt_jwks_file=Path(idp["PGW_JWT_JWKS_FILE"]), **overrides)
        setup.init(settings)
        return settings
    return make


@dataclass(frozen=True)
class Deployment:
    """A database migrated by an owner that is no superuser, with a service's and a
    sequencer's role granted by `pgw migrate`, as the README sets it up."""

    url: str  # a superuser's, to change the roles
    owner: str
    svc: str
    seq: str
    check: Callable[[], list[str]]  # `pgw check` with the service's and sequencer's URLs

    def sql(self, *statements: str, as_: str | None = None) -> None:
        url = as_role(self.url, as_) if as_ else self.url
        with psycopg.connect(_admin_dsn(url), autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    @contextmanager
    def group(self, attributes: str = "") -> Iterator[str]:
        """A role that cannot log in, dropped afterwards with every grant it holds."""
        name = f"pgw_grp_{secrets.token_hex(4)}"
        self.sql(f'CREATE ROLE "{name}" NOLOGIN {attributes}')
        try:
            yield name
        finally:
            self.sql(f'REVOKE SET ON PARAMETER session_replication_role FROM "{name}"',
                     f'DROP OWNED BY "{name}"', f'DROP ROLE "{name}"')


@pytest.fixture
def deployment(dialect: str, databases: DatabaseFactory,
               prod_settings: Callable[..., Settings]) -> Iterator[Deployment]:
    if dialect != "postgresql":
        pytest.skip("database roles are a PostgreSQL feature (set PGW_TEST_DATABASE_URL)")
    url = databases.new(migrated=False)
    with login_roles(url, "owner", "svc", "seq") as roles:
        with psycopg.connect(_admin_dsn(url), autocommit=True) as conn:
            conn.execute(f'GRANT CREATE ON SCHEMA public TO "{roles["owner"]}"')
        upgrade(as_role(url, roles["owner"]), service_role=roles["svc"],
                sequencer_role=roles["seq"])
        settings = prod_settings(database_url=as_role(url, roles["svc"]),
                                 sequencer_database_url=as_role(url, roles["seq"]),
                                 service_role=roles["svc"])
        found = Deployment(url=url, owner=roles["owner"], svc=roles["svc"], seq=roles["seq"],
                           check=lambda: setup.problems(settings))
        assert found.check() == []
        yield found
