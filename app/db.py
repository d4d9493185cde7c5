"""Database engine, typed model base and schema-version checks.

SQLite runs in WAL mode and every transaction starts with BEGIN IMMEDIATE: a deferred transaction
that reads and then writes can fail at once with "database is locked" when another writer got in
between, and the busy timeout does not help in that case. Taking the write lock up front makes
concurrent requests queue on the busy timeout instead.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Enum,
    MetaData,
    Select,
    Table,
    and_,
    create_engine,
    event,
    insert,
    or_,
)
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import DeclarativeBase, InstrumentedAttribute, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

import app

SQLITE_BUSY_TIMEOUT_MS = 30_000
PING_IDLE_SECONDS = 1.0
_RETURNED_AT = "pgw_returned_at"  # a pooled connection's info: when it was last given back
_IDLE = 0  # psycopg.pq.TransactionStatus.IDLE: no transaction open on the connection
# Every PostgreSQL transaction's, whatever the server's default: the services' conditional
# updates (a grant expired once, a job claimed once) rely on it.
PG_ISOLATION = "READ COMMITTED"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC without zone information and always returns aware UTC datetimes."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given; use aware UTC datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def state_column(states: type[StrEnum], length: int) -> Enum:
    """A column of a lifecycle `StrEnum`, stored as its values in a plain VARCHAR(`length`)
    (no database enum type, no CHECK constraint), so a new state needs no migration."""
    return Enum(states, native_enum=False, create_constraint=False, length=length,
                values_callable=lambda members: [member.value for member in members],
                validate_strings=True)


class Position(NamedTuple):
    """Where a listing stands: the sort key and the id of the last row a client was given."""

    at: datetime
    id: str


Selected = TypeVar("Selected")


def keyset(query: Select[Selected], *, sort: InstrumentedAttribute[datetime],
           id: InstrumentedAttribute[str], after: Position | None,
           descending: bool = False) -> Select[Selected]:
    """`query` ordered by (`sort`, `id`) and, with `after`, only the rows past that position:
    a row added or removed before it shifts nothing, unlike an offset."""
    if descending:
        query = query.order_by(sort.desc(), id.desc())
    else:
        query = query.order_by(sort, id)
    if after is None:
        return query
    beyond = or_(sort < after.at, and_(sort == after.at, id < after.id)) if descending \
        else or_(sort > after.at, and_(sort == after.at, id > after.id))
    return query.where(beyond)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def normalise_url(url: str) -> str:
    """Accept `postgresql://` and `postgres://` and use psycopg 3 for them."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_on_connect(busy_timeout_ms: int) -> Callable[[Any, Any], None]:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # SQLAlchemy's begin event issues BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    return on_connect


READ_ONLY = "pgw_read_only"


def _sqlite_on_begin(connection: Any) -> None:
    # Read-only sessions (exports, verification) must not hold the write lock for their length.
    read_only = connection.get_execution_options().get(READ_ONLY, False)
    connection.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")


_SENT = "pgw_statements_sent"  # a connection's info: statements it has sent (make_engine's)


def _count_statement(connection: Connection, *_args: Any) -> None:
    connection.info[_SENT] = connection.info.get(_SENT, 0) + 1


def statements_sent(session: Session) -> int | None:
    """How many statements the connection of the session's transaction has sent so far (a
    count that only grows), or None on an engine not made by `make_engine`."""
    sent: int | None = session.connection().info.get(_SENT)
    return sent


# A statement that may run on its own, committed as it runs, while a session reads without a
# transaction (`begin_lazily`); set on the statement (`.execution_options(**OUTSIDE_TRANSACTION)`).
_OUTSIDE = "pgw_outside_transaction"
OUTSIDE_TRANSACTION = {_OUTSIDE: True}
_LAZILY = "pgw_begin_lazily"  # a connection's execution option: begin at the first need


def begin_lazily(session: Session) -> Connection:
    """The session's connection for a request that reads and then writes its audit entry: call
    it before the session's first statement. On PostgreSQL no transaction is begun until a
    statement needs one: those marked OUTSIDE_TRANSACTION (plain reads; an audit entry that is
    the transaction's only write) run on their own, and the first statement not so marked, or
    sent for several rows at once, begins one, which the session commits or rolls back as
    usual. A masked read then sends its two statements without BEGIN and COMMIT, two round
    trips fewer; its audit entry still commits before the response is sent, and a read that
    fails to write it fails. On SQLite, where a BEGIN is no round trip, the usual connection."""
    if not is_postgres(session):
        return session.connection()
    return session.connection(
        execution_options={"isolation_level": "AUTOCOMMIT", _LAZILY: True})


def _begin_when_needed(connection: Connection, cursor: Any, _statement: str, _parameters: Any,
                       context: Any, executemany: bool) -> None:
    if not connection.get_execution_options().get(_LAZILY):
        return
    dbapi = cursor.connection
    if dbapi.pgconn.transaction_status != _IDLE:  # begun already
        return
    if executemany or not context.execution_options.get(_OUTSIDE):
        # at the engine's isolation, which AUTOCOMMIT cleared on the connection; psycopg commits
        # or rolls back what is begun, autocommit or not
        dbapi.execute(f"BEGIN ISOLATION LEVEL {PG_ISOLATION}")


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Check a pooled connection with a round trip of its own only when it comes out of the
    pool after more than `idle_seconds` there (0: every time). A connection lost while idle (the
    database restarted, a firewall dropped it) is then replaced before a request uses it, and
    one in steady use costs no extra round trip. One used within the last `idle_seconds` when
    the database went away fails like a request in flight then; the pool then replaces every
    connection older than that failure."""
    dialect = engine.dialect

    def given_back(dbapi_connection: Any, record: Any) -> None:
        if dbapi_connection is not None:
            record.info[_RETURNED_AT] = time.monotonic()

    def taken(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        returned = record.info.get(_RETURNED_AT)  # a new connection has none: no ping
        if returned is None or time.monotonic() - returned < idle_seconds:
            return
        try:
            dialect.do_ping(dbapi_connection)
        except Exception as exc:  # the pool drops it and connects anew (DisconnectionError)
            raise DisconnectionError("a pooled connection was lost while idle") from exc

    event.listen(engine, "checkin", given_back)
    event.listen(engine, "checkout", taken)


def make_engine(url: str, *, pool_size: int = 10, max_overflow: int | None = None,
                pool_timeout: float = 30, connect_timeout: float = 10,
                busy_timeout_ms: int = SQLITE_BUSY_TIMEOUT_MS,
                ping_idle_seconds: float = PING_IDLE_SECONDS) -> Engine:
    """An engine whose waits are all bounded: for a pooled connection (`pool_timeout`), for a
    new one (`connect_timeout`) and, on SQLite, for the write lock (`busy_timeout_ms`). On
    PostgreSQL the pool hands out the connection given back last (so those in use stay warm
    and the surplus ages out) and checks only one idle for over `ping_idle_seconds`."""
    url = normalise_url(url)
    pool = {"pool_size": pool_size, "max_overflow": pool_size if max_overflow is None
            else max_overflow, "pool_timeout": pool_timeout}
    if make_url(url).get_backend_name() == "sqlite":
        database = make_url(url).database
        if database and database != ":memory:":
            # The file holds personal data: owner-only, and SQLite gives -wal/-shm the same mode.
            Path(database).parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Only when it does not exist yet: closing any descriptor of the file would drop
            # the SQLite locks this process's open connections hold on it, and another
            # process closing its last connection would then delete the WAL under them.
            if not Path(database).exists():
                with suppress(FileExistsError):
                    os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        busy_ms = busy_timeout_ms
        engine = create_engine(
            url,
            connect_args={"timeout": busy_ms / 1000, "check_same_thread": False},
            hide_parameters=True,  # parameters are customer data: keep them out of errors
            **pool if database and database != ":memory:" else {},
        )
        event.listen(engine, "connect", _sqlite_on_connect(busy_ms))
        event.listen(engine, "begin", _sqlite_on_begin)
        event.listen(engine, "after_cursor_execute", _count_statement)
        return engine
    engine = create_engine(
        url,
        **pool,
        pool_use_lifo=True,
        pool_recycle=1800,
        isolation_level=PG_ISOLATION,
        hide_parameters=True,
        connect_args={"connect_timeout": max(1, int(connect_timeout))},
    )
    _ping_when_idle(engine, ping_idle_seconds)
    event.listen(engine, "before_cursor_execute", _begin_when_needed)
    event.listen(engine, "after_cursor_execute", _count_statement)
    return engine


def make_session_factory(engine: Engine, *, read_only: bool = False,
                         info: dict[str, Any] | None = None) -> sessionmaker[Session]:
    bind = engine.execution_options(**{READ_ONLY: True}) if read_only else engine
    return sessionmaker(bind=bind, expire_on_commit=False, info=info or {})


def is_postgres(session_or_engine: Session | Engine) -> bool:
    bind = session_or_engine.get_bind() if isinstance(session_or_engine, Session) else \
        session_or_engine
    return bind.dialect.name == "postgresql"


def copy_rows(session: Session, table: Table, rows: list[dict[str, Any]]) -> None:
    """Rows into `table` in the session's transaction, after flushing it: by COPY on
    PostgreSQL, a fraction of the CPU of as many INSERTs on both sides; elsewhere one
    executemany INSERT. Every row has the same columns, by key; each value passes through its
    column's type as an INSERT's would, but Python-side defaults and SQL expressions are not
    applied (a column left out gets its server default). The COPY counts as one statement
    sent; a failure is raised as SQLAlchemy's DBAPIError of the driver's error, without the
    row's values."""
    if not rows:
        return
    session.flush()
    connection = session.connection()
    dialect = connection.dialect
    if dialect.name != "postgresql":
        connection.execute(insert(table), rows)
        return
    driver = connection.connection.driver_connection
    if driver is None:
        raise RuntimeError("the session's connection is closed")
    if driver.autocommit and driver.pgconn.transaction_status == _IDLE:  # begin_lazily's
        raise RuntimeError("copy_rows would commit on its own: begin a transaction first")
    columns = [table.c[key] for key in rows[0]]
    convert = [(column.key, column.type.dialect_impl(dialect).bind_processor(dialect))
               for column in columns]
    quote = dialect.identifier_preparer
    statement = (f"COPY {quote.format_table(table)} "
                 f"({', '.join(quote.format_column(column) for column in columns)}) FROM STDIN")
    connection.info[_SENT] = connection.info.get(_SENT, 0) + 1
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row([row[key] if process is None else process(row[key])
                                for key, process in convert])
    except dialect.loaded_dbapi.Error as error:
        lost = dialect.is_disconnect(error, driver, None)
        if lost:
            connection.invalidate(error)
        # the driver's first line only: the lines after it (DETAIL, CONTEXT) quote the row
        bare = type(error)(error.diag.message_primary or str(error).partition("\n")[0])
        raise DBAPIError.instance(statement, None, bare, dialect.loaded_dbapi.Error,
                                  hide_parameters=True, connection_invalidated=lost,
                                  dialect=dialect) from None


def migrations_dir() -> Path:
    """`migrations/` beside the package in a checkout, else in the working directory."""
    beside = Path(app.__file__).resolve().parent.parent / "migrations"
    return beside if (beside / "env.py").is_file() else Path.cwd() / "migrations"


def alembic_config(url: str | None = None) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def upgrade(url: str, revision: str = "head", *, service_role: str | None = None,
            sequencer_role: str | None = None) -> None:
    """Migrate (as the tables' owner); then, on PostgreSQL, grant the service's role (and the
    audit sequencer's, when it has its own) what they need and no more."""
    from alembic import command

    command.upgrade(alembic_config(url), revision)
    if service_role is not None:
        from app.db_roles import grant_roles

        engine = make_engine(url, pool_size=1)
        try:
            with engine.begin() as connection:
                grant_roles(connection, service=service_role, sequencer=sequencer_role)
        finally:
            engine.dispose()


def migration_state(engine: Engine) -> tuple[str | None, str | None]:
    """(current revision in the database, head revision of the scripts)."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    with engine.connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    return current, head
