"""What the role a PostgreSQL connection logs in as could do to the audit log, for `pgw check`.

A role may do what any role it is a member of may do: it inherits that role's privileges, and
it may SET ROLE to it and so also use its attributes (SUPERUSER, CREATEROLE, REPLICATION are
never inherited, but SET ROLE gives them). Every role the login role is a member of, directly
or by way of others, is therefore looked at as if it were the login role itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, text
from sqlalchemy.dialects import postgresql

# The tables the audit log's triggers guard; whoever owns one can switch its triggers off.
AUDIT_TABLES = ("audit_entries", "audit_checkpoints", "audit_tree_nodes", "audit_pending")
ROLES_README = 'README "Tamper evidence against the service itself"'
# Predefined roles that reach past the database's privileges (PostgreSQL's documentation: the
# three server-file roles "could be used to gain superuser-level access"), and the one that
# writes every table as if granted INSERT, UPDATE and DELETE on it.
SERVER_ROLES = {
    "pg_execute_server_program": (
        "may run programs on the database server as its operating-system user "
        "(COPY ... PROGRAM), and so change any of the cluster's files, the audit log's included"),
    "pg_write_server_files": (
        "may write any file on the database server as its operating-system user "
        "(COPY ... TO a file), the cluster's configuration and data included, and so take the "
        "cluster over"),
    "pg_read_server_files": (
        "may read any file on the database server as its operating-system user "
        "(COPY ... FROM a file), the cluster's data with every role's password hash included: "
        "PostgreSQL's documentation warns that this can give a superuser's access"),
    "pg_write_all_data": (
        "may write every table as if granted INSERT, UPDATE and DELETE on it, and so change or "
        "take away audit entries queued for the sequencer, and add entries to the log itself"),
}
# quotes a name for SQL only where PostgreSQL needs it (capitals, a keyword, a quote, ...)
_quote = postgresql.dialect().identifier_preparer.quote  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class Member:
    """The login role itself, or a role it is a member of."""

    name: str
    superuser: bool
    createrole: bool
    replication: bool
    through: tuple[str, ...]  # the login role's own groups that lead to it; () for itself
    creates_schemas: bool = False  # granted CREATE on the database


@dataclass(frozen=True)
class RoleFacts:
    """What `pgw check` reads about the role a connection logs in as."""

    name: str
    writes_log: bool  # may add to audit_entries: it can sequence
    roles: tuple[Member, ...]  # itself first, then every role it is a member of
    table_owners: dict[str, str]  # audit table: its owner
    schema: tuple[str, str]  # the audit tables' schema and its owner
    database: tuple[str, str]  # the database and its owner
    replica_setters: tuple[str, ...]  # granted SET ON PARAMETER session_replication_role


def role_facts(engine: Engine) -> RoleFacts:
    with engine.connect() as connection:
        name, writes_log = connection.execute(text(
            "SELECT current_user, has_table_privilege('audit_entries', 'INSERT')")).one()
        rows = connection.execute(text(
            "SELECT r.rolname, r.rolsuper, r.rolcreaterole, r.rolreplication, "
            "  ARRAY(SELECT g.rolname::text FROM pg_auth_members m "
            "    JOIN pg_roles g ON g.oid = m.roleid "
            "    WHERE m.member = me.oid AND pg_has_role(g.oid, r.oid, 'MEMBER') ORDER BY 1), "
            "  has_database_privilege(r.oid, current_database(), 'CREATE') "
            "FROM pg_roles me JOIN pg_roles r ON pg_has_role(me.oid, r.oid, 'MEMBER') "
            "WHERE me.rolname = current_user ORDER BY r.oid <> me.oid, r.rolname"))
        roles = tuple(Member(row[0], row[1], row[2], row[3], tuple(row[4]), row[5])
                      for row in rows)
        owners = {row[0]: row[1] for row in connection.execute(text(
            "SELECT relname::text, pg_get_userbyid(relowner)::text FROM pg_class "
            "WHERE relnamespace = current_schema()::regnamespace AND relname = ANY(:tables) "
            "ORDER BY relname"), {"tables": list(AUDIT_TABLES)})}
        schema = connection.execute(text(
            "SELECT nspname::text, pg_get_userbyid(nspowner)::text FROM pg_namespace "
            "WHERE oid = current_schema()::regnamespace")).one()
        database = connection.execute(text(
            "SELECT datname::text, pg_get_userbyid(datdba)::text FROM pg_database "
            "WHERE datname = current_database()")).one()
        return RoleFacts(name=name, writes_log=writes_log, roles=roles, table_owners=owners,
                         schema=(schema[0], schema[1]), database=(database[0], database[1]),
                         replica_setters=_replica_setters(connection))


def _replica_setters(connection: Connection) -> tuple[str, ...]:
    """The roles (PUBLIC too) granted SET on session_replication_role: PostgreSQL 15 and later
    let a superuser grant it; before, only a superuser may set it."""
    if (connection.dialect.server_version_info or (0,)) < (15,):
        return ()
    return tuple(connection.scalars(text(
        "SELECT CASE a.grantee WHEN 0 THEN 'PUBLIC' ELSE pg_get_userbyid(a.grantee)::text END "
        "FROM pg_parameter_acl p, aclexplode(p.paracl) a "
        "WHERE p.parname = 'session_replication_role' AND a.privilege_type = 'SET' "
        "ORDER BY 1")))


def bypass(variable: str, facts: RoleFacts, remedy: str) -> list[str]:
    """Every way the role could rewrite the audit log without a trace, each with the SQL that
    stops it; a superuser or the tables' owner is said once (it can do everything)."""
    who = f"{variable} connects as {facts.name!r}"
    readme = f" ({ROLES_README})"
    superusers = [role for role in facts.roles if role.superuser]
    if superusers:
        if superusers[0].name == facts.name:
            return [f"{who}, a superuser, which can switch the audit log's triggers off and "
                    f"rewrite it; {remedy}{readme}"]
        return [f"{who}, {_member(role)}, a superuser: it may SET ROLE {_quote(role.name)} and "
                f"then switch the audit log's triggers off and rewrite it; fix: "
                f"{_leave(facts, role)}{readme}" for role in superusers]
    names = {role.name for role in facts.roles}
    owned = [table for table, owner in facts.table_owners.items() if owner in names]
    if facts.name in facts.table_owners.values():
        return [f"{who}, the owner of {', '.join(owned)}, which can switch the audit log's "
                f"triggers off and rewrite it; {remedy}{readme}"]
    found = []
    for role in facts.roles:
        tables = [table for table, owner in facts.table_owners.items() if owner == role.name]
        if tables:
            found.append(f"{who}, {_member(role)}, the owner of {', '.join(tables)}: it may SET "
                         f"ROLE {_quote(role.name)} and then switch the audit log's triggers "
                         f"off and rewrite it; fix: {_leave(facts, role)}{readme}")
    if found:
        return found
    return [*_attributes(who, facts), *_grants(who, facts), *_ownership(who, facts)]


def _owner(facts: RoleFacts) -> str:
    """The audit tables' owner (the migration role), quoted for SQL."""
    return _quote(facts.table_owners.get("audit_entries", "OWNER"))


def _member(role: Member) -> str:
    if len(role.through) > 1 or role.through and role.through[0] != role.name:
        return f"a member of {role.name!r} by way of {' and '.join(map(repr, role.through))}"
    return f"a member of {role.name!r}"


def _leave(facts: RoleFacts, role: Member) -> str:
    """The SQL that takes the login role out of `role`."""
    if role.name == "pg_database_owner":  # its one member is the database's owner
        return f"ALTER DATABASE {_quote(facts.database[0])} OWNER TO {_owner(facts)}"
    return f"REVOKE {', '.join(map(_quote, role.through))} FROM {_quote(facts.name)}"


def _attributes(who: str, facts: RoleFacts) -> Iterator[str]:
    why = {
        "CREATEROLE": (
            "with it a role can make itself a member of other roles (on PostgreSQL 15 and "
            f"earlier of any but a superuser, the audit tables' owner {_owner(facts)} too) "
            "and then switch the audit log's triggers off and rewrite it"),
        "REPLICATION": (
            "with it a role can copy the whole cluster over a replication connection "
            "(pg_basebackup), every role's password hash included, the audit tables' owner's "
            "too"),
    }
    for role in facts.roles:
        for attribute, has in (("CREATEROLE", role.createrole),
                               ("REPLICATION", role.replication)):
            if not has:
                continue
            drop = f"ALTER ROLE {_quote(role.name)} NO{attribute}"
            if role.name == facts.name:
                yield (f"{who}, which has {attribute}: {why[attribute]}; neither the service's "
                       f"role nor the sequencer's needs it; fix: {drop}")
            else:
                yield (f"{who}, {_member(role)}, which has {attribute} (SET ROLE "
                       f"{_quote(role.name)} gives it): {why[attribute]}; fix: "
                       f"{_leave(facts, role)} (or {drop})")


def _grants(who: str, facts: RoleFacts) -> Iterator[str]:
    for role in facts.roles:
        if role.name in SERVER_ROLES:
            yield (f"{who}, {_member(role)}, which {SERVER_ROLES[role.name]}; fix: "
                   f"{_leave(facts, role)}")
    members = {role.name: role for role in facts.roles}
    revoke = "REVOKE SET ON PARAMETER session_replication_role FROM"
    for holder in facts.replica_setters:
        if holder == facts.name:
            yield (f"{who}, which may SET session_replication_role and so switch the audit "
                   f"log's triggers off; fix: {revoke} {_quote(holder)}")
        elif holder == "PUBLIC":
            yield (f"{who}, which may SET session_replication_role (granted to PUBLIC, so to "
                   f"every role) and so switch the audit log's triggers off; fix: {revoke} "
                   "PUBLIC")
        elif holder in members:
            role = members[holder]
            yield (f"{who}, {_member(role)}, which may SET session_replication_role: so may "
                   f"{facts.name!r} (after SET ROLE {_quote(holder)}, if it does not inherit "
                   "that role's privileges) and switch the audit log's triggers off; fix: "
                   f"{revoke} {_quote(holder)} (or take {facts.name!r} out of {holder!r}: "
                   f"{_leave(facts, role)})")


def _ownership(who: str, facts: RoleFacts) -> Iterator[str]:
    """The database's owner may point every session at tables of its own; the schema's owner
    may drop the audit tables (PostgreSQL 15's `public` belongs to the database's owner)."""
    members = {role.name: role for role in facts.roles}
    (schema, schema_owner), (database, database_owner) = facts.schema, facts.database
    if database_owner in members:
        role = members[database_owner]
        also = (", and drop the audit tables and create others in their place (the schema "
                f"{schema!r} belongs to the database's owner)"
                if schema_owner == "pg_database_owner" else "")
        yield (f"{who}, {_owns(facts, role)} the database {database!r}: it may create schemas "
               "and make every session look in one of them first (ALTER DATABASE ... SET "
               f"search_path), and so give the sequencer and every reader audit tables of its "
               f"own{also}; fix: ALTER DATABASE {_quote(database)} OWNER TO {_owner(facts)}")
    for role in facts.roles:  # the owner's CREATE is said above
        if not role.creates_schemas or role.name == database_owner:
            continue
        whose = "which" if role.name == facts.name else f"{_member(role)}, which"
        yield (f"{who}, {whose} may create schemas in the database {database!r}: a schema "
               "named like a role comes first in that role's search_path (\"$user\"), so it "
               "could give the sequencer or a reader audit tables of its own; fix: REVOKE "
               f"CREATE ON DATABASE {_quote(database)} FROM {_quote(role.name)}")
    if schema_owner in members and schema_owner != "pg_database_owner":
        yield (f"{who}, {_owns(facts, members[schema_owner])} the schema {schema!r}: it may "
               "drop the audit tables and create others in their place; fix: ALTER SCHEMA "
               f"{_quote(schema)} OWNER TO {_owner(facts)}")


def _owns(facts: RoleFacts, role: Member) -> str:
    return "which owns" if role.name == facts.name else f"{_member(role)}, which owns"
