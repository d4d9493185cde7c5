"""The service's settings (`settings`) and the checks production applies to them
(`production`)."""

from app.config.production import check_production, production_problems
from app.config.settings import (
    ASYMMETRIC_ALGORITHMS,
    DEV_ISSUER,
    HMAC_ALGORITHMS,
    MIN_HMAC_SECRET_BITS,
    MIN_HMAC_SECRET_BYTES,
    ConfigError,
    Environment,
    Settings,
    UnknownRoles,
    load_settings,
)

__all__ = ["ASYMMETRIC_ALGORITHMS", "DEV_ISSUER", "HMAC_ALGORITHMS", "MIN_HMAC_SECRET_BITS",
           "MIN_HMAC_SECRET_BYTES", "ConfigError", "Environment", "Settings", "UnknownRoles",
           "check_production", "load_settings", "production_problems"]
