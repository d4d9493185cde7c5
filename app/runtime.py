"""What a running process needs, wired in one place for the HTTP app, the CLI and the workers."""

from __future__ import annotations

import gc
import logging
import os
import secrets
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.audit import service as audit
from app.capacity import Admission, Lane
from app.config import Settings
from app.db import make_engine, make_session_factory
from app.jobs import queue
from app.keys import files
from app.keys.errors import Sealed
from app.keys.files import KeyFileError
from app.keys.kek import KekUnavailable, load_kek
from app.keys.keyring import Keyring
from app.keys.signing import Signer, load_signer
from app.policy.loader import Policy, load_policy

logger = logging.getLogger("pgw.runtime")

# What `Runtime.transaction` is: a context manager giving a session that commits at the end.
Transaction = Callable[[], AbstractContextManager[Session]]


@dataclass
class Runtime:
    settings: Settings
    engine: Engine
    session_factory: sessionmaker[Session]
    read_session_factory: sessionmaker[Session]
    policy: Policy
    audit_signer: Signer | None
    # from the settings (open_runtime): sessions a process admits, and the threads record
    # writes and record reads run on, PGW_REQUEST_THREADS each: apart, so that writes scanning
    # long free text do not take the reads' threads
    admission: Admission
    write_lane: Lane
    read_lane: Lane
    key_problems: list[str] = field(default_factory=list)
    pii_hash_key: bytes | None = field(default=None, repr=False)
    receipt_signer: Signer | None = None
    keyring: Keyring | None = None
    # A connection of its own for readiness, so probes never wait behind requests in the pool.
    probe_engine: Engine | None = None
    probe_session_factory: sessionmaker[Session] | None = None
    # The audit sequencer's sessions: the service's own, or its own role's when separate.
    sequencer_session_factory: sessionmaker[Session] | None = None
    sequencer_engine: Engine | None = None

    @property
    def sealed(self) -> bool:
        return self.keyring is None or bool(self.keyring.seal_reasons)

    def require_keyring(self) -> Keyring:
        """The keyring; Sealed (503) when no key-encryption key is available, or the one this
        process has does not match the check values in the database."""
        if self.keyring is None:
            raise Sealed("the service is sealed: no key-encryption key is available")
        if self.keyring.seal_reasons:
            raise Sealed(f"the service is sealed: {'; '.join(self.keyring.seal_reasons)}")
        return self.keyring

    def sync_keys(self, factory: sessionmaker[Session] | None = None) -> list[str]:
        """Compare the KEK with the database's check values (and record missing ones) in a
        transaction of its own; the reasons keys cannot be served, if any."""
        if self.keyring is None:
            return []  # the reason is in key_problems already
        with (factory or self.session_factory)() as session:
            problems = self.keyring.sync(session)
            session.commit()
            return problems

    def close(self) -> None:
        self.write_lane.close()
        self.read_lane.close()
        self.engine.dispose()
        if self.sequencer_engine is not None:
            self.sequencer_engine.dispose()
        if self.probe_engine is not None:
            self.probe_engine.dispose()

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session that commits when the block ends without an error (CLI and jobs)."""
        with self.session_factory() as session:
            yield session
            session.commit()


def _signer(path: Path, what: str, settings: Settings, problems: list[str]) -> Signer | None:
    """An Ed25519 signing key (made in dev); a missing one is reported, not fatal."""
    try:
        return load_signer(path, create=settings.is_dev)
    except KeyFileError as exc:
        problems.append(f"{what} unavailable: {exc}")
        return None


def load_hash_key(settings: Settings) -> bytes | None:
    """The keyed-hash key (hash operator, consent evidence); made in dev. Without it the hash
    operator refuses to run, and everything else works."""
    try:
        return files.read_or_create(settings.pii_hash_key_file,
                                    generate=lambda: secrets.token_bytes(32),
                                    create=settings.is_dev)
    except KeyFileError:
        return None


def private_data_dir(path: Path) -> None:
    """The data dir holds keys and the embedded database: owner-only. One made earlier with a
    looser mode is tightened; one owned by another user is refused."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid != os.geteuid():
        raise KeyFileError(f"PGW_DATA_DIR {path} belongs to another user; refusing to keep "
                           "keys there")
    if info.st_mode & 0o077:
        logger.warning("PGW_DATA_DIR %s was readable by others (mode %o); tightened to 0700",
                       path, info.st_mode & 0o777)
        path.chmod(0o700)


def _lane(name: str, settings: Settings) -> Lane:
    return Lane(name, threads=settings.request_threads, queue=settings.request_queue,
                wait_seconds=settings.request_queue_seconds)


def open_runtime(settings: Settings, *,
                 on_audit_failure: Callable[[], None] = lambda: None) -> Runtime:
    """Load policies and keys and open the database. Raises PolicyError on a bad policy."""
    # Imported here, not at the top: the domains' job handlers it registers take a Runtime.
    from app.wiring import wire

    private_data_dir(settings.data_dir)
    policy = load_policy(settings.policy_dir)
    problems: list[str] = []
    signer = _signer(settings.audit_key_file, "audit signing key", settings, problems)
    receipt_signer = _signer(settings.receipt_key_file, "consent receipt signing key",
                             settings, problems)
    hash_key = load_hash_key(settings)
    try:
        keyring: Keyring | None = Keyring(
            kek=load_kek(settings), cipher_name=settings.cipher,
            cache_size=settings.dek_cache_size, ttl=settings.dek_cache_ttl_seconds)
    except KekUnavailable as exc:
        keyring = None
        problems.append(f"sealed: {exc}")
    wire(keyring=keyring, jobs=queue.REGISTRY)
    engine = make_engine(settings.sqlalchemy_url, pool_size=settings.db_pool_size,
                         pool_timeout=settings.db_pool_timeout_seconds,
                         connect_timeout=settings.db_connect_timeout_seconds,
                         busy_timeout_ms=int(settings.sqlite_busy_timeout_seconds * 1000),
                         ping_idle_seconds=settings.db_ping_idle_seconds)
    probe_timeout = settings.readiness_timeout_seconds
    probe_engine = make_engine(settings.sqlalchemy_url, pool_size=1, max_overflow=0,
                               pool_timeout=probe_timeout, connect_timeout=probe_timeout,
                               busy_timeout_ms=int(probe_timeout * 1000))
    writer = audit.AuditWriter(
        policy_version=policy.version, signer=signer,
        checkpoint_every=settings.audit_checkpoint_every, on_failure=on_audit_failure,
        origin=settings.audit_origin or f"privacy-gateway/{signer.key_id if signer else 'log'}",
        checkpoint_interval=timedelta(seconds=settings.audit_checkpoint_seconds))
    runtime = Runtime(
        settings=settings,
        engine=engine,
        session_factory=audit.hooked(make_session_factory(engine,
                                                          info={audit.WRITER_KEY: writer})),
        read_session_factory=audit.hooked(make_session_factory(engine, read_only=True)),
        policy=policy,
        audit_signer=signer,
        key_problems=problems,
        pii_hash_key=hash_key,
        receipt_signer=receipt_signer,
        keyring=keyring,
        probe_engine=probe_engine,
        probe_session_factory=audit.hooked(make_session_factory(
            probe_engine, info={audit.WRITER_KEY: writer})),
        admission=Admission(limit=2 * settings.db_pool_size + settings.db_max_waiting),
        write_lane=_lane("record writes", settings),
        read_lane=_lane("record reads", settings),
    )
    # The sequencer's connections are its own: a reader bringing the log up to date while its
    # request holds a pooled connection must never wait for a second one from the same pool.
    runtime.sequencer_engine = make_engine(
        settings.sequencer_database_url or settings.sqlalchemy_url, pool_size=2, max_overflow=0,
        pool_timeout=settings.db_pool_timeout_seconds,
        connect_timeout=settings.db_connect_timeout_seconds,
        busy_timeout_ms=int(settings.sqlite_busy_timeout_seconds * 1000),
        ping_idle_seconds=settings.db_ping_idle_seconds)
    runtime.sequencer_session_factory = audit.hooked(make_session_factory(
        runtime.sequencer_engine, info={audit.WRITER_KEY: writer}))
    # The service's role sequences too, unless the sequencer has a role of its own: then a
    # serving process waits for it, and needs only its name, never its credentials.
    if not settings.sequencer_database_url and not settings.sequencer_role:
        writer.sequencer_sessions = runtime.sequencer_session_factory
    try:
        runtime.sync_keys()  # a wrong KEK seals the process now, not at its first use
    except SQLAlchemyError as exc:  # not reachable or not migrated yet: checked on first use
        logger.warning("KEK check values not compared at start: %s", type(exc).__name__)
    return runtime


@contextmanager
def opened(settings: Settings, *, need_keys: bool = False) -> Iterator[Runtime]:
    """A runtime for one command; with `need_keys`, a sealed one stops the command."""
    runtime = open_runtime(settings)
    try:
        if need_keys and runtime.keyring is None:
            raise SystemExit(f"pgw: {'; '.join(runtime.key_problems)}")
        yield runtime
    finally:
        runtime.close()


def freeze_startup_heap() -> None:
    """Move everything loaded at start-up out of the cyclic collector's reach.

    spaCy, Presidio and the Chinese model leave millions of long-lived objects; a full
    collection walks all of them and, measured under load, paused a worker for 0.3-0.7 s in the
    middle of requests. Garbage made at start-up is collected first, so only live objects are
    frozen; what requests allocate later is collected as before.
    """
    gc.collect()
    gc.freeze()
