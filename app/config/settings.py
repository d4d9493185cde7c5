"""Settings, read once from the environment (prefix `PGW_`), and the values they check."""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from app.keys.ciphers import CipherName, cipher_name

HMAC_ALGORITHMS = frozenset({"HS256", "HS384", "HS512"})
ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
)
DEV_ISSUER = "pgw-dev"
MIN_HMAC_SECRET_BYTES = 32
MIN_HMAC_SECRET_BITS = 120  # estimated; a random 32-character base64 secret scores 127 or more


class Environment(StrEnum):
    DEV = "dev"
    PROD = "prod"


class UnknownRoles(StrEnum):
    """What a token's role that no policy defines does: refuse the request (403 naming it), or
    be logged, counted and ignored."""

    REFUSE = "refuse"
    IGNORE = "ignore"


class ConfigError(Exception):
    """Settings are missing or unsafe; each problem names its variable, and all of them are
    reported together so a deployment is fixed in one round, not one error per attempt."""

    def __init__(self, *problems: str):
        super().__init__(*problems)
        self.problems = list(problems)

    def __str__(self) -> str:
        if len(self.problems) == 1:
            return self.problems[0]
        return f"{len(self.problems)} problems: " + "; ".join(self.problems)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PGW_", extra="ignore", frozen=True)

    env: Environment = Environment.DEV
    data_dir: Path = Path("./data")
    database_url: str | None = None
    # PostgreSQL: migrations run as the tables' owner, the service as a role that may not
    # rewrite the audit log (see `pgw migrate` and README "Database roles")
    migration_database_url: str | None = None
    service_role: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    sequencer_database_url: str | None = None  # the audit sequencer's own role, if separate
    sequencer_role: str | None = Field(default=None, pattern=r"^[a-z_][a-z0-9_]{0,62}$")
    policy_dir: Path = Path("./policies")

    jwt_algorithms: Annotated[tuple[str, ...], NoDecode] = ("HS256",)
    jwt_secret: SecretStr | None = None
    jwt_public_key_file: Path | None = None
    jwt_jwks_file: Path | None = None
    jwt_issuer: str = DEV_ISSUER
    jwt_audience: str = "privacy-gateway"
    jwt_leeway_seconds: int = Field(default=30, ge=0, le=300)
    jwt_max_lifetime_seconds: int = Field(default=86400, ge=60, le=30 * 86400)  # exp - iat
    # Keys from the operator's identity provider: its discovery document, or a JWKS URL.
    oidc_issuer: str | None = None
    # The staff console signs people in at that provider (authorization code with PKCE).
    oidc_client_id: str | None = Field(default=None, min_length=1, max_length=255)
    oidc_client_secret: SecretStr | None = None  # confidential clients only; PKCE either way
    console_session_idle_minutes: int = Field(default=30, ge=1, le=24 * 60)
    console_session_hours: float = Field(default=8, gt=0, le=24)  # however active
    jwt_jwks_url: str | None = None
    jwks_cache_seconds: int = Field(default=900, ge=60, le=86400)  # longest between refreshes
    jwks_refresh_min_interval_seconds: float = Field(default=30, ge=1, le=3600)  # unknown kid
    jwks_fetch_timeout_seconds: float = Field(default=5, gt=0, le=30)
    # Where the claims are, as dotted paths: `realm_access.roles`, `scp`, `groups`.
    jwt_roles_claim: str = "roles"
    jwt_scopes_claim: str = "scope"
    jwt_unknown_roles: UnknownRoles = UnknownRoles.REFUSE
    # roles the identity provider puts in every token that mean nothing here (offline_access)
    jwt_ignored_roles: Annotated[tuple[str, ...], NoDecode] = ()
    metrics_require_token: bool = False  # /metrics then needs a token with `metrics:read`
    allow_sqlite_in_prod: bool = False
    # per caller and route class (`/v1/<class>/...`): rate per second/burst; 0 is unlimited
    rate_limits: str = "default=200/400,pii=50/100,datasets=5/10"
    pii_chars_per_second: int = Field(default=1_000_000, ge=0)  # per caller; 0 is unlimited

    max_body_bytes: int = Field(default=1024 * 1024, ge=1024)
    max_batch_bytes: int = Field(default=16 * 1024 * 1024, ge=1024)  # POST /v1/records/batch
    max_upload_bytes: int = Field(default=64 * 1024 * 1024, ge=1024)  # dataset uploads
    audit_checkpoint_every: int = Field(default=256, ge=1)
    audit_checkpoint_seconds: float = Field(default=60, gt=0, le=86400)
    audit_sequencer_poll_seconds: float = Field(default=0.2, gt=0, le=60)
    audit_origin: str | None = Field(default=None, min_length=1, max_length=200,
                                     pattern=r"^[\x21-\x2a\x2c-\x7e]+$")  # no space, no +
    audit_signing_key_file: Path | None = None
    receipt_signing_key_file: Path | None = None
    log_level: str = "INFO"

    kek_provider: str = "local"
    kek: SecretStr | None = None
    pkcs11_module: str | None = None
    pkcs11_token_label: str | None = None
    pkcs11_pin: SecretStr | None = None
    cipher: CipherName = CipherName.AES_256_GCM
    dek_cache_size: int = Field(default=10_000, ge=1)
    dek_cache_ttl_seconds: float = Field(default=60, gt=0, le=3600)

    worker_in_serve: bool = True  # dev only: `pgw serve` runs a job worker in a thread
    worker_poll_seconds: float = Field(default=1.0, gt=0, le=60)
    # a worker not seen for this long counts as gone; workers beat six times within it
    worker_stale_seconds: float = Field(default=60, ge=1, le=3600)
    job_lease_seconds: float = Field(default=60, ge=1, le=3600)
    job_retry_base_seconds: float = Field(default=5, gt=0, le=3600)
    export_ttl_hours: int = Field(default=168, ge=1, le=24 * 90)  # how long a DSR export lasts
    dsr_due_soon_days: int = Field(default=7, ge=1, le=30)
    # how long a stored response answers a retried POST with the same Idempotency-Key
    idempotency_ttl_hours: int = Field(default=24, ge=1, le=24 * 30)
    webhook_timeout_seconds: float = Field(default=10, gt=0, le=60)
    webhook_delivery_threads: int = Field(default=4, ge=1, le=64)  # per running worker
    # host names, addresses and CIDR networks webhooks may reach although they are internal
    webhook_allow_hosts: Annotated[tuple[str, ...], NoDecode] = ()

    # Connections per process: the pool, how long a request waits for one, and how many
    # requests beyond the pool's size may wait at all (the rest get 503 at once).
    db_pool_size: int = Field(default=10, ge=1, le=200)
    db_pool_timeout_seconds: float = Field(default=5, gt=0, le=60)
    db_max_waiting: int = Field(default=20, ge=0, le=1000)
    db_connect_timeout_seconds: int = Field(default=5, ge=1, le=60)
    # Record writes a process works on at once, and as many reads, each on a thread of its own;
    # more wait their turn on the event loop. Past a few, threads only fight over the GIL
    # (measured on 2 cores at 32 clients: 2, 4 and 8 alike, 40 about 0.7 of them); raise it for
    # a distant database, whose round trips a request spends more of its time waiting on.
    request_threads: int = Field(default=8, ge=1, le=200)
    # Requests of each kind that may wait for one of those threads, and for how long; past
    # either a request gets 503 with Retry-After. Waiting requests hold no connection.
    request_queue: int = Field(default=64, ge=0, le=10000)
    request_queue_seconds: float = Field(default=5, gt=0, le=60)
    # a pooled PostgreSQL connection idle longer than this is checked before use (0: always)
    db_ping_idle_seconds: float = Field(default=1, ge=0, le=3600)
    sqlite_busy_timeout_seconds: float = Field(default=30, gt=0, le=300)  # wait for the write lock
    readiness_timeout_seconds: float = Field(default=3, gt=0, le=30)
    min_free_disk_mb: int = Field(default=100, ge=0)  # below this in PGW_DATA_DIR: not ready

    nlp_model_en: str = "pgw-en-ner"  # the shipped model; or an installed spaCy package
    pii_max_chars: int = Field(default=100_000, ge=1)
    # A scan that takes longer fails closed: the write is refused, the scan answers 503.
    pii_scan_seconds: float = Field(default=10, gt=0, le=300)
    # A scan with more text than this for one model shares that model's work with a helper
    # process: each gateway process starts one, with its own copy of both models (about
    # 340 MB). 0 turns the helper off; it is never started on a one-core machine.
    pii_parallel_min_chars: int = Field(default=20_000, ge=0)

    # The public privacy centre (/privacy): the operator's branding and languages, and where
    # one-time codes go. Without PGW_SMTP_HOST codes go to a file under PGW_DATA_DIR in dev,
    # and are "not configured" in prod; phone codes likewise go to a file in dev only.
    privacy_name: str = Field(default="Privacy centre", min_length=1, max_length=80)
    # scheme, host and path only: the host goes into the page's Content-Security-Policy
    privacy_logo_url: str | None = Field(default=None, max_length=500, pattern=(
        r"^(https://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[\w./~-]*)?|/privacy/static/[\w.-]+)$"))
    privacy_logo_file: Path | None = None  # served at /privacy/brand/logo
    privacy_primary_colour: str = Field(default="#1f4e79", pattern=r"^#[0-9a-fA-F]{6}$")
    privacy_accent_colour: str = Field(default="#e8f0f8", pattern=r"^#[0-9a-fA-F]{6}$")
    privacy_officer_contact: str = Field(default="privacy@example.com", min_length=1,
                                         max_length=200)
    privacy_languages: Annotated[tuple[str, ...], NoDecode] = ("zh", "en")
    privacy_code_minutes: int = Field(default=10, ge=1, le=60)
    privacy_session_minutes: int = Field(default=30, ge=5, le=240)
    privacy_codes_per_hour: int = Field(default=5, ge=1, le=100)  # per person and per address
    privacy_requests_per_hour_per_ip: int = Field(default=30, ge=1, le=10_000)
    privacy_code_attempts: int = Field(default=5, ge=1, le=20)  # wrong codes before it dies
    smtp_host: str | None = None
    smtp_port: int = Field(default=587, ge=1, le=65535)
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "privacy@localhost"
    smtp_starttls: bool = True
    smtp_timeout_seconds: float = Field(default=10, gt=0, le=60)
    # phone codes: POSTed as signed JSON {"to", "text"} to an SMS gateway's webhook
    sms_webhook_url: str | None = None
    sms_webhook_secret: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _asymmetric_for_remote_keys(cls, values: object) -> object:
        # an identity provider's keys (fetched, or in a file) are public keys: HS256 makes no
        # sense there
        if isinstance(values, dict) and "jwt_algorithms" not in values and any(
                values.get(name) for name in ("oidc_issuer", "jwt_jwks_url", "jwt_jwks_file",
                                              "jwt_public_key_file")):
            values = {**values, "jwt_algorithms": tuple(sorted(ASYMMETRIC_ALGORITHMS))}
        return values

    @field_validator("jwt_algorithms", "jwt_ignored_roles", "privacy_languages",
                     "webhook_allow_hosts", mode="before")
    @classmethod
    def _split_lists(cls, value: object) -> object:
        """A comma-separated environment value as a tuple of its non-empty parts."""
        if isinstance(value, str):
            value = tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("jwt_roles_claim", "jwt_scopes_claim")
    @classmethod
    def _claim_path(cls, value: str) -> str:
        if not value or any(not part.strip() for part in value.split(".")):
            raise ValueError("a claim path is one or more names joined by dots, "
                             "e.g. realm_access.roles")
        return value

    @model_validator(mode="after")
    def _identity_provider_urls(self) -> Settings:
        from app.auth.oidc import url_problem

        sources = [name for name, value in (
            ("PGW_OIDC_ISSUER", self.oidc_issuer), ("PGW_JWT_JWKS_URL", self.jwt_jwks_url),
            ("PGW_JWT_JWKS_FILE", self.jwt_jwks_file)) if value]
        if len(sources) > 1:
            raise ValueError(f"set one of {' and '.join(sources)}, not several")
        for name, url in (("PGW_OIDC_ISSUER", self.oidc_issuer),
                          ("PGW_JWT_JWKS_URL", self.jwt_jwks_url)):
            problem = url_problem(url, dev=self.is_dev) if url else None
            if problem:
                raise ValueError(f"{name}: {problem}")
        return self

    @field_validator("rate_limits")
    @classmethod
    def _valid_limits(cls, value: str) -> str:
        from app.auth.limits import parse_limits

        parse_limits(value)
        return value

    @field_validator("privacy_languages")
    @classmethod
    def _known_languages(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [lang for lang in value if lang not in ("zh", "en")]
        if not value or unknown:
            raise ValueError("PGW_PRIVACY_LANGUAGES: a comma-separated list of zh and en")
        return value

    @field_validator("webhook_allow_hosts")
    @classmethod
    def _known_host_forms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for entry in value:
            try:
                ipaddress.ip_network(entry.strip("[]"), strict=False)
            except ValueError:
                if not re.fullmatch(r"[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*\.?", entry):
                    raise ValueError(f"PGW_WEBHOOK_ALLOW_HOSTS: {entry!r} is not a host name, "
                                     "an address or a CIDR network") from None
        return value

    @field_validator("cipher", mode="before")
    @classmethod
    def _known_cipher(cls, value: str) -> CipherName:
        try:
            return cipher_name(value)
        except ValueError:
            raise ValueError("PGW_CIPHER must be aes-256-gcm (aes) or sm4-gcm (sm4)") from None

    @field_validator("jwt_algorithms")
    @classmethod
    def _known_algorithms(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("at least one algorithm is required")
        unknown = [alg for alg in value if alg not in HMAC_ALGORITHMS | ASYMMETRIC_ALGORITHMS]
        if unknown:
            raise ValueError(f"unsupported algorithm(s): {', '.join(unknown)}")
        return value

    @property
    def is_dev(self) -> bool:
        return self.env is Environment.DEV

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'pgw.sqlite3').resolve()}"

    @property
    def migration_url(self) -> str:
        """The owner role's URL for `pgw migrate` (the service's own when not set)."""
        return self.migration_database_url or self.sqlalchemy_url

    @property
    def dev_jwt_secret_file(self) -> Path:
        return self.data_dir / "dev-jwt-secret"

    @property
    def receipt_key_file(self) -> Path:
        return self.receipt_signing_key_file or self.data_dir / "receipt-signing-key.pem"

    @property
    def pii_hash_key_file(self) -> Path:
        return self.data_dir / "pii-hash-key"

    @property
    def audit_key_file(self) -> Path:
        return self.audit_signing_key_file or self.data_dir / "audit-signing-key.pem"

    @property
    def token_issuer(self) -> str:
        """The `iss` tokens must carry: PGW_JWT_ISSUER when set (Entra's v1 tokens differ
        from the discovery issuer), else PGW_OIDC_ISSUER."""
        if self.oidc_issuer and self.jwt_issuer == DEV_ISSUER:
            return self.oidc_issuer
        return self.jwt_issuer

    @property
    def remote_keys(self) -> bool:
        return bool(self.oidc_issuer or self.jwt_jwks_url)

    @property
    def uses_hmac(self) -> bool:
        return any(alg in HMAC_ALGORITHMS for alg in self.jwt_algorithms)

    @property
    def uses_asymmetric(self) -> bool:
        return any(alg in ASYMMETRIC_ALGORITHMS for alg in self.jwt_algorithms)


def load_settings() -> Settings:
    return Settings()
