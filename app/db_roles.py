"""The database roles on PostgreSQL: what the service's role and the audit sequencer's may do
to each table, granted by `pgw migrate` as the tables' owner."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, text

# The audit log: only the sequencer adds to it; nobody changes or removes a row.
AUDIT_LOG = ("audit_entries", "audit_checkpoints", "audit_tree_nodes")
APPEND_ONLY = ("consent_events",)  # the service may add rows, never change or remove them


def _rights(table: str, *, sequencer: bool, service_sequences: bool) -> str:
    if table in AUDIT_LOG:
        return "SELECT, INSERT" if sequencer or service_sequences else "SELECT"
    if table == "audit_pending":  # writers add (`_queue_insert`); only the sequencer takes away
        if sequencer:
            return "SELECT, DELETE"
        return "SELECT, DELETE" if service_sequences else "SELECT"
    if table == "audit_sequencer":  # its row lock is the sequencer's turn
        return "SELECT, UPDATE" if sequencer or service_sequences else ""
    if sequencer:
        return "SELECT" if table == "alembic_version" else ""
    if table in APPEND_ONLY:
        return "SELECT, INSERT"
    return "SELECT" if table == "alembic_version" else "SELECT, INSERT, UPDATE, DELETE"


def grant_roles(connection: Connection, *, service: str, sequencer: str | None = None) -> None:
    """Grant the service's role read and write on its tables but only SELECT and INSERT on the
    append-only ones, and no write to the audit log but its queue (and not the queue's id); the
    sequencer's role (or, without one, the service's) moves queued entries onto the log. The
    migration role owns the tables; these roles do not, so neither can ALTER them, switch their
    triggers off or TRUNCATE them. `session_replication_role` can be set only by a superuser
    or, since PostgreSQL 15, a role granted `SET ON PARAMETER session_replication_role`: never
    grant that to either role, nor CREATEROLE, REPLICATION, the owner's role or a predefined
    role that reaches the server's files (`pgw check` refuses them in prod: ops/role_check.py)."""
    if connection.dialect.name != "postgresql":
        raise ValueError("database roles are a PostgreSQL feature")
    quote = connection.dialect.identifier_preparer.quote
    schema = quote(connection.execute(text("SELECT current_schema()")).scalar_one())
    database = quote(connection.execute(text("SELECT current_database()")).scalar_one())
    tables = [row[0] for row in connection.execute(text(
        "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"))]
    # a temporary table named like a log table would hide it on that connection
    connection.execute(text(f"REVOKE TEMPORARY ON DATABASE {database} FROM PUBLIC"))
    for role, is_sequencer in ((service, False), (sequencer, True)):
        if role is None:
            continue
        name = quote(role)
        connection.execute(text(f"GRANT USAGE ON SCHEMA {schema} TO {name}"))
        for table in tables:
            connection.execute(text(f"REVOKE ALL ON {quote(table)} FROM {name}"))
            rights = _rights(table, sequencer=is_sequencer, service_sequences=sequencer is None)
            if rights:
                connection.execute(text(f"GRANT {rights} ON {quote(table)} TO {name}"))
        if not is_sequencer:
            connection.execute(text(_queue_insert(connection, quote, name)))
        connection.execute(text(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} "
                                f"TO {name}"))


def _queue_insert(connection: Connection, quote: Callable[[str], str], role: str) -> str:
    """INSERT on the queue's columns but its id and the time it was queued: the id orders the
    queue (the sequencer numbers entries in its order), so a writer that chose its own could put
    an entry before others committed earlier; `queued_at` is the database's clock, which the
    integration lag is measured by."""
    columns = [row[0] for row in connection.execute(text(
        "SELECT column_name FROM information_schema.columns WHERE table_schema = "
        "current_schema() AND table_name = 'audit_pending' AND column_name NOT IN "
        "('id', 'queued_at') ORDER BY ordinal_position"))]
    return f"GRANT INSERT ({', '.join(map(quote, columns))}) ON audit_pending TO {role}"
