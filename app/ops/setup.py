"""One-step setup: `pgw init` creates the keys a deployment needs, `pgw check` lists every
configuration problem at once.

`init` never overwrites: a key that exists is kept whatever it holds (overwriting a KEK or a
signing key would make stored data or old signatures unreadable); `check` then says what is wrong
with it. Secrets go to files with mode 0600; only a setting that can be given solely as a value
(PGW_KEK with the `env` provider) is printed, once.
"""

from __future__ import annotations

import base64
import os
import secrets
import shlex
import stat
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.auth.tokens import TokenConfigError, load_verifier, remote_key_set
from app.config import DEV_ISSUER, Environment, Settings, production_problems
from app.db import make_engine, migration_state
from app.errors import database_error
from app.keys import files, kek_versions, rows
from app.keys.kek import KekProvider, KekUnavailable, Pkcs11Keks, load_kek
from app.keys.signing import generate_pem, load_signer
from app.ops.role_check import bypass, role_facts
from app.policy.loader import PolicyError, load_policy
from app.runtime import private_data_dir

KEK_FILE = "kek-v1.key"


@dataclass
class SetupResult:
    """What `init` did, and the environment the operator should set."""

    created: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    environment: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    printed_secrets: list[str] = field(default_factory=list)  # variables whose value is secret

    def exports(self) -> list[str]:
        return [f"export {name}={shlex.quote(value)}" for name, value in self.environment.items()]


def _key_file(result: SetupResult, what: str, path: Path, data: bytes) -> None:
    if files.write_new(path, data):
        result.created.append(f"{what} {path}")
    else:
        result.kept.append(f"{what} {path} (exists, not overwritten)")


def _kek(result: SetupResult, settings: Settings) -> None:
    result.environment["PGW_KEK_PROVIDER"] = settings.kek_provider
    if settings.kek_provider == "local":
        directory = (settings.data_dir / "kek").resolve()
        directory.mkdir(mode=0o700, exist_ok=True)
        existing = sorted(p.name for p in directory.glob("kek-v*.key"))
        if existing:
            result.kept.append(f"KEK {directory} ({', '.join(existing)}; not overwritten)")
        else:
            _key_file(result, "KEK", directory / KEK_FILE, secrets.token_bytes(32))
    elif settings.kek_provider == "env":
        if settings.kek is not None:
            result.kept.append("KEK in PGW_KEK (already set)")
            return
        result.environment["PGW_KEK"] = base64.b64encode(secrets.token_bytes(32)).decode()
        result.printed_secrets.append("PGW_KEK")
        result.notes.append("PGW_KEK can only be given as a value, so it is printed this once: "
                            "keep it in your secret store; without it no record can be read")
    elif settings.kek_provider == "pkcs11":
        if not (settings.pkcs11_module and settings.pkcs11_token_label and settings.pkcs11_pin):
            result.notes.append("set PGW_PKCS11_MODULE, PGW_PKCS11_TOKEN_LABEL and "
                                "PGW_PKCS11_PIN, then run `pgw init` again to create the KEK")
            return
        keks = Pkcs11Keks(settings.pkcs11_module, settings.pkcs11_token_label,
                          settings.pkcs11_pin.get_secret_value(), create=True)
        result.kept.append(f"KEK in PKCS#11 token {settings.pkcs11_token_label!r} "
                           f"(versions {', '.join(map(str, keks.versions()))})")
    else:
        result.notes.append(f"unknown PGW_KEK_PROVIDER {settings.kek_provider!r}; "
                            "choose local, env or pkcs11")


def _tokens(result: SetupResult, settings: Settings) -> None:
    if settings.is_dev:
        if settings.jwt_secret is not None:
            result.kept.append("JWT secret in PGW_JWT_SECRET (already set)")
        else:
            _key_file(result, "development JWT secret", settings.dev_jwt_secret_file.resolve(),
                      secrets.token_urlsafe(48).encode())
        result.notes.append("mint development tokens with `pgw token --sub NAME --scope ...`")
        return
    if settings.token_issuer == DEV_ISSUER and not settings.remote_keys:
        result.notes.append(
            "prod needs your identity provider to issue tokens: set PGW_OIDC_ISSUER (its "
            "discovery document), or PGW_JWT_JWKS_URL, PGW_JWT_JWKS_FILE or "
            "PGW_JWT_PUBLIC_KEY_FILE with PGW_JWT_ISSUER and PGW_JWT_ALGORITHMS (e.g. RS256); "
            "`pgw token` is refused in prod")


def _database(result: SetupResult, settings: Settings) -> None:
    if settings.database_url is None and not settings.is_dev:
        result.notes.append(
            "set PGW_DATABASE_URL=postgresql+psycopg://USER:PASSWORD@HOST:5432/DB (or "
            "PGW_ALLOW_SQLITE_IN_PROD=true for a single process on SQLite)")
    result.notes.append("then run `pgw migrate` and `pgw check`")


def init(settings: Settings) -> SetupResult:
    """Create every key the settings call for that is missing; never overwrite one."""
    result = SetupResult()
    data_dir = settings.data_dir.resolve()
    existed = data_dir.is_dir()
    private_data_dir(data_dir)
    (result.kept if existed else result.created).append(f"data directory {data_dir}")
    result.environment["PGW_ENV"] = settings.env.value
    result.environment["PGW_DATA_DIR"] = str(data_dir)
    if settings.policy_dir.is_dir():
        result.environment["PGW_POLICY_DIR"] = str(settings.policy_dir.resolve())
    else:
        result.notes.append(f"PGW_POLICY_DIR {settings.policy_dir} does not exist; point it at "
                            "your policy pack (the repository's policies/ is an example)")
    _kek(result, settings)
    for what, variable, path in (
        ("audit signing key", "PGW_AUDIT_SIGNING_KEY_FILE", settings.audit_key_file),
        ("consent receipt signing key", "PGW_RECEIPT_SIGNING_KEY_FILE",
         settings.receipt_key_file),
    ):
        _key_file(result, what, path.resolve(), generate_pem())
        result.environment[variable] = str(path.resolve())
    _key_file(result, "keyed-hash key", settings.pii_hash_key_file.resolve(),
              secrets.token_bytes(32))
    _tokens(result, settings)
    _database(result, settings)
    return result


def settings_problems(exc: ValidationError) -> list[str]:
    """Every invalid setting, named by its variable (pydantic reports them all at once)."""
    found = []
    for error in exc.errors():
        message = error["msg"].removeprefix("Value error, ")
        name = f"PGW_{str(error['loc'][0]).upper()}" if error["loc"] else ""
        if name and not message.startswith(name):
            message = f"{name}: {message}"
        found.append(message)
    return found


def _mode_problem(path: Path, variable: str, limit: int) -> list[str]:
    mode = stat.S_IMODE(path.stat().st_mode)
    if path.stat().st_uid != os.geteuid():
        return [f"{variable} {path} belongs to another user"]
    if mode & ~limit & 0o777:
        return [f"{variable} {path} is open to others (mode {mode:o}); run chmod {limit:o} {path}"]
    return []


def _data_dir(settings: Settings, *, serving: bool) -> list[str]:
    path = settings.data_dir
    if not path.is_dir():
        if settings.is_dev:
            return []
        return [f"PGW_DATA_DIR {path} does not exist; create it with `pgw init`"]
    if serving:  # start-up tightens a loose data dir itself
        return []
    return _mode_problem(path, "PGW_DATA_DIR", 0o700)


def _key_files(settings: Settings, *, serving: bool) -> list[str]:
    found: list[str] = []
    for variable, path in (("PGW_AUDIT_SIGNING_KEY_FILE", settings.audit_key_file),
                           ("PGW_RECEIPT_SIGNING_KEY_FILE", settings.receipt_key_file)):
        if path.exists():  # a missing one is reported by production_problems (made in dev)
            try:
                load_signer(path, create=False)
            except (files.KeyFileError, OSError) as exc:
                found.append(f"{variable}: {exc}")
    path = settings.pii_hash_key_file
    if path.exists():
        try:
            files.read(path)
        except (files.KeyFileError, OSError) as exc:
            found.append(f"keyed-hash key: {exc}")
    elif not settings.is_dev and not serving:  # without it only the hash operator refuses
        found.append(f"keyed-hash key {path} is missing (the hash operator and consent evidence "
                     "need it); create it with `pgw init`")
    return found


def _kek_problems(settings: Settings) -> tuple[KekProvider | None, list[str]]:
    """The KEK loaded as production would (never created here); in dev a missing local one is
    no problem, the first start makes it."""
    local = settings.data_dir / "kek"
    if settings.is_dev and settings.kek_provider == "local" and not any(local.glob("kek-v*")):
        return None, []
    try:
        return load_kek(settings.model_copy(update={"env": Environment.PROD})), []
    except KekUnavailable as exc:
        hint = "; create it with `pgw init`" if settings.kek_provider == "local" else ""
        problems = [f"KEK: {exc}{hint}"]
        if settings.kek_provider == "local" and local.is_dir():
            problems += _mode_problem(local, "KEK directory", 0o700)
        return None, problems


def _tokens_problems(settings: Settings) -> list[str]:
    if settings.is_dev and settings.jwt_secret is None and \
            not settings.dev_jwt_secret_file.exists():
        return []  # made on the first start in dev
    try:
        load_verifier(settings, create_dev_secret=False)
    except TokenConfigError as exc:
        return [str(exc)]
    return []


def _identity_provider(settings: Settings) -> list[str]:
    """Fetch the identity provider's keys once (only when one is configured)."""
    cache = remote_key_set(settings)
    if cache is None or cache.refresh("check"):
        return []
    error = cache.last_error or "no keys"
    return [error if error.startswith(cache.setting) else f"{cache.setting}: {error}"]


def _policy(settings: Settings) -> list[str]:
    try:
        load_policy(settings.policy_dir)
    except PolicyError as exc:
        return [f"PGW_POLICY_DIR: {exc}"]
    except OSError as exc:
        return [f"PGW_POLICY_DIR: cannot read {settings.policy_dir} ({type(exc).__name__})"]
    return []


def _role_problems(settings: Settings, engine: Engine) -> list[str]:
    """On PostgreSQL: in prod, a service or sequencer role that could rewrite the audit log; and
    anywhere, a service role that may not sequence while no sequencer's role is given."""
    service = role_facts(engine)
    found = []
    if not settings.sequencer_database_url and not settings.sequencer_role \
            and not service.writes_log:
        found.append(f"neither PGW_SEQUENCER_ROLE nor PGW_SEQUENCER_DATABASE_URL is set, but "
                     f"{service.name!r} may not add to the audit log (`pgw migrate` with "
                     "PGW_SEQUENCER_ROLE left that to the sequencer's role): set "
                     "PGW_SEQUENCER_ROLE for `pgw serve` (it then waits for the sequencer), and "
                     "give every `pgw worker` the sequencer role's URL in "
                     "PGW_SEQUENCER_DATABASE_URL")
    if settings.is_dev:  # one role for everything is how development runs
        return found
    found += bypass("PGW_DATABASE_URL", service, (
        "create a role for the service, run `pgw migrate` as the tables' owner with "
        "PGW_MIGRATION_DATABASE_URL set to the owner's URL and PGW_SERVICE_ROLE to the new "
        "role, then point PGW_DATABASE_URL at the new role"))
    if settings.service_role and service.name != settings.service_role and not found:
        found.append(f"PGW_DATABASE_URL connects as {service.name!r}, but `pgw migrate` grants "
                     f"PGW_SERVICE_ROLE ({settings.service_role!r}): connect as that role")
    if settings.sequencer_database_url:
        found += _sequencer_problems(settings, settings.sequencer_database_url)
    return found


def _sequencer_problems(settings: Settings, url: str) -> list[str]:
    engine = make_engine(url, pool_size=1, max_overflow=0,
                         pool_timeout=settings.db_connect_timeout_seconds,
                         connect_timeout=settings.db_connect_timeout_seconds)
    try:
        sequencer = role_facts(engine)
    except SQLAlchemyError as exc:
        return [f"PGW_SEQUENCER_DATABASE_URL: the database cannot be used ({_why(exc)})"]
    finally:
        engine.dispose()
    return bypass("PGW_SEQUENCER_DATABASE_URL", sequencer, (
        "create a role for the sequencer, run `pgw migrate` with PGW_SEQUENCER_ROLE set to it, "
        "then point PGW_SEQUENCER_DATABASE_URL at it"))


def _why(exc: SQLAlchemyError) -> str:
    """The kind of a database failure only: the driver's text may quote the URL."""
    known = database_error(exc)
    return known.title.lower() if known else type(exc).__name__


def _database_problems(settings: Settings, kek: KekProvider | None) -> list[str]:
    url = settings.sqlalchemy_url
    migrated_on_start = settings.is_dev  # `pgw serve` migrates in dev
    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        if migrated_on_start:
            return []
        return [f"PGW_DATABASE_URL: the SQLite database {url.removeprefix('sqlite:///')} does "
                "not exist yet; create it with `pgw migrate`"]
    engine = make_engine(url, pool_size=1, max_overflow=0,
                         pool_timeout=settings.db_connect_timeout_seconds,
                         connect_timeout=settings.db_connect_timeout_seconds)
    try:
        current, head = migration_state(engine)
        if current != head and not migrated_on_start:
            return [f"PGW_DATABASE_URL: database at migration {current}, expected {head}; "
                    "run `pgw migrate`"]
        found = _role_problems(settings, engine) if current == head and \
            engine.dialect.name == "postgresql" else []
        if kek is None:
            return found
        with Session(engine) as session:
            checks = kek_versions.recorded(session)
            least = rows.min_kek_version(session)
        return found + [f"KEK: {reason}" for reason in (
            *kek_versions.mismatches(kek, checks, min_version=least),
            *kek_versions.missing(kek, checks, min_version=least))]
    except SQLAlchemyError as exc:
        return [f"PGW_DATABASE_URL: the database cannot be used ({_why(exc)})"]
    finally:
        engine.dispose()


def problems(settings: Settings, *, serving: bool = False) -> list[str]:
    """Every configuration problem, each naming its variable. `serving` is the start-up check:
    it leaves out what a running service reports on /readyz instead (the database, which may be
    down for a moment; the KEK, without which it starts sealed) and what start-up repairs (a
    loose data directory)."""
    found = production_problems(settings)
    found += _data_dir(settings, serving=serving)
    found += _key_files(settings, serving=serving)
    if not any(p.startswith("PGW_JWT_") for p in found):
        found += _tokens_problems(settings)
    found += _policy(settings)
    if not serving:
        kek, kek_found = _kek_problems(settings)
        found += kek_found
        found += _identity_provider(settings)
        found += _database_problems(settings, kek)
    return found
