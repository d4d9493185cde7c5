"""Production settings for `pgw check`: keys made by `pgw init`, tokens from an identity
provider whose key set is a file."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey, generate_private_key

from app.config import Settings
from app.ops import setup

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
