"""What the role a PostgreSQL connection logs in as could do to the audit log, for `pgw check`."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Engine, text

# The tables the audit log's triggers guard; whoever owns one can switch its triggers off.
AUDIT_TABLES = ("audit_entries", "audit_checkpoints", "audit_tree_nodes", "audit_pending")
ROLES_README = 'README "Tamper evidence against the service itself"'


@dataclass(frozen=True)
class RoleFacts:
    """What the role a connection logs in as could do to the audit log."""

    name: str
    superuser: bool
    owns: list[str]  # audit tables it owns, or may act as the owner of
    sets_replica: bool  # may SET session_replication_role (PostgreSQL 15+ grants it)
    writes_log: bool  # may add to audit_entries: it can sequence


def role_facts(engine: Engine) -> RoleFacts:
    with engine.connect() as connection:
        name, superuser, owns, writes_log = connection.execute(text(
            "SELECT current_user, rolsuper, ARRAY(SELECT relname::text FROM pg_class "
            "  WHERE relnamespace = current_schema()::regnamespace AND relname = ANY(:tables) "
            "  AND pg_has_role(relowner, 'MEMBER') ORDER BY relname), "
            "  has_table_privilege('audit_entries', 'INSERT') "
            "FROM pg_roles WHERE rolname = current_user"), {"tables": list(AUDIT_TABLES)}).one()
        sets_replica = (connection.dialect.server_version_info or (0,)) >= (15,) and \
            connection.scalar(text(
                "SELECT has_parameter_privilege('session_replication_role', 'SET')"))
    return RoleFacts(name=name, superuser=superuser, owns=owns, sets_replica=bool(sets_replica),
                     writes_log=writes_log)


def bypass(variable: str, role: RoleFacts, remedy: str) -> list[str]:
    """How the role could rewrite the audit log without a trace, if it could."""
    if role.superuser:
        why = "a superuser"
    elif role.owns:
        why = f"the owner of {', '.join(role.owns)}"
    elif role.sets_replica:
        return [f"{variable} connects as {role.name!r}, which may SET "
                "session_replication_role and so switch the audit log's triggers off: "
                f"REVOKE SET ON PARAMETER session_replication_role FROM {role.name}"]
    else:
        return []
    return [f"{variable} connects as {role.name!r}, {why}, which can switch the audit log's "
            f"triggers off and rewrite it; {remedy} ({ROLES_README})"]
