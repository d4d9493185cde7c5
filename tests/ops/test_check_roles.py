"""`pgw check` in prod refuses a service or sequencer role that could rewrite the audit log by
any way PostgreSQL gives it: an attribute (its own, or one a role it is a member of has and SET
ROLE gives it), membership in the tables' owner or a predefined role that reaches past the
database's privileges, a grant on session_replication_role (named where it is held), or the
ownership of the database or the schema. Each fix it prints is run, and the check then passes."""

from __future__ import annotations

from sqlalchemy.engine import make_url

from app.ops.role_check import SERVER_ROLES, Member, RoleFacts, bypass
from tests.ops.conftest import Deployment

README = '(README "Tamper evidence against the service itself")'
TRIGGERS_OFF = "switch the audit log's triggers off"


def test_createrole_and_replication_are_refused(deployment: Deployment) -> None:
    d = deployment
    d.sql(f"ALTER ROLE {d.svc} CREATEROLE REPLICATION")
    assert d.check() == [
        f"PGW_DATABASE_URL connects as {d.svc!r}, which has CREATEROLE: with it a role can make "
        "itself a member of other roles (on PostgreSQL 15 and earlier of any but a superuser, "
        f"the audit tables' owner {d.owner} too) and then {TRIGGERS_OFF} and rewrite it; "
        "neither the service's role nor the sequencer's needs it; fix: "
        f"ALTER ROLE {d.svc} NOCREATEROLE",
        f"PGW_DATABASE_URL connects as {d.svc!r}, which has REPLICATION: with it a role can "
        "copy the whole cluster over a replication connection (pg_basebackup), every role's "
        "password hash included, the audit tables' owner's too; neither the service's role "
        f"nor the sequencer's needs it; fix: ALTER ROLE {d.svc} NOREPLICATION"]
    # what CREATEROLE allows on PostgreSQL 15: becoming the owner, which the check then names
    d.sql(f"GRANT {d.owner} TO {d.svc}", as_=d.svc)
    assert d.check() == [  # said once: it can do everything
        f"PGW_DATABASE_URL connects as {d.svc!r}, a member of {d.owner!r}, the owner of "
        "audit_checkpoints, audit_entries, audit_pending, audit_tree_nodes: it may SET ROLE "
        f"{d.owner} and then {TRIGGERS_OFF} and rewrite it; fix: REVOKE {d.owner} FROM "
        f"{d.svc} {README}"]
    d.sql(f"REVOKE {d.owner} FROM {d.svc}", f"ALTER ROLE {d.svc} NOCREATEROLE NOREPLICATION")
    assert d.check() == []
    d.sql(f"ALTER ROLE {d.seq} REPLICATION")
    [sequencer] = d.check()
    assert sequencer.startswith(f"PGW_SEQUENCER_DATABASE_URL connects as {d.seq!r}, which has "
                                "REPLICATION: ")
    assert sequencer.endswith(f"fix: ALTER ROLE {d.seq} NOREPLICATION")


def test_attributes_reached_through_a_group_are_refused(deployment: Deployment) -> None:
    """Attributes are not inherited, but a member may SET ROLE to the group and use them."""
    d = deployment
    with d.group("CREATEROLE") as creator, d.group("SUPERUSER") as superuser, \
            d.group() as team:
        d.sql(f"GRANT {creator} TO {team}", f"GRANT {team} TO {d.svc}")
        assert d.check() == [
            f"PGW_DATABASE_URL connects as {d.svc!r}, a member of {creator!r} by way of "
            f"{team!r}, which has CREATEROLE (SET ROLE {creator} gives it): with it a role can "
            "make itself a member of other roles (on PostgreSQL 15 and earlier of any but a "
            f"superuser, the audit tables' owner {d.owner} too) and then {TRIGGERS_OFF} and "
            f"rewrite it; fix: REVOKE {team} FROM {d.svc} (or ALTER ROLE {creator} "
            "NOCREATEROLE)"]
        d.sql(f"SET ROLE {creator}", f"CREATE ROLE {creator}_made", f"DROP ROLE {creator}_made",
              as_=d.svc)  # what the check means
        d.sql(f"REVOKE {team} FROM {d.svc}")
        assert d.check() == []
        d.sql(f"GRANT {superuser} TO {d.seq}")
        assert d.check() == [
            f"PGW_SEQUENCER_DATABASE_URL connects as {d.seq!r}, a member of {superuser!r}, a "
            f"superuser: it may SET ROLE {superuser} and then {TRIGGERS_OFF} and rewrite it; "
            f"fix: REVOKE {superuser} FROM {d.seq} {README}"]
        d.sql(f"REVOKE {superuser} FROM {d.seq}")
        assert d.check() == []


def test_admin_option_on_the_owner_role_is_refused(deployment: Deployment) -> None:
    """ADMIN OPTION on the owner's role lets a role grant it to itself: on PostgreSQL 15 it is
    a membership already (and on 16, a member that may not SET ROLE could grant itself that)."""
    d = deployment
    with d.group() as team:
        d.sql(f"GRANT {d.owner} TO {team} WITH ADMIN OPTION", f"GRANT {team} TO {d.svc}")
        assert d.check() == [
            f"PGW_DATABASE_URL connects as {d.svc!r}, a member of {d.owner!r} by way of "
            f"{team!r}, the owner of audit_checkpoints, audit_entries, audit_pending, "
            f"audit_tree_nodes: it may SET ROLE {d.owner} and then {TRIGGERS_OFF} and rewrite "
            f"it; fix: REVOKE {team} FROM {d.svc} {README}"]
        d.sql(f"REVOKE {team} FROM {d.svc}", f"GRANT {d.owner} TO {d.seq} WITH ADMIN OPTION")
        [sequencer] = d.check()
        assert sequencer.startswith(f"PGW_SEQUENCER_DATABASE_URL connects as {d.seq!r}, a "
                                    f"member of {d.owner!r}, the owner of ")
        assert sequencer.endswith(f"fix: REVOKE {d.owner} FROM {d.seq} {README}")
        d.sql(f"REVOKE {d.owner} FROM {d.seq}")
        assert d.check() == []


def test_predefined_roles_past_the_databases_privileges_are_refused(
        deployment: Deployment) -> None:
    d = deployment
    for predefined, why in SERVER_ROLES.items():
        d.sql(f"GRANT {predefined} TO {d.svc}")
        assert d.check() == [f"PGW_DATABASE_URL connects as {d.svc!r}, a member of "
                             f"{predefined!r}, which {why}; fix: REVOKE {predefined} FROM "
                             f"{d.svc}"], predefined
        d.sql(f"REVOKE {predefined} FROM {d.svc}")
    assert d.check() == []
    # what pg_write_all_data means: the service changes and takes away queued entries
    d.sql(f"GRANT pg_write_all_data TO {d.svc}")
    d.sql("UPDATE audit_pending SET actor = 'mallory'", "DELETE FROM audit_pending", as_=d.svc)


def test_the_replication_grant_is_named_where_it_is_held(deployment: Deployment) -> None:
    """Granted to a group, SET ON PARAMETER session_replication_role is its members' too (and a
    member that does not inherit may SET ROLE to the group): the fix names the group."""
    d = deployment
    with d.group() as setter, d.group() as team:
        d.sql(f"GRANT SET ON PARAMETER session_replication_role TO {setter}",
              f"GRANT {setter} TO {d.svc}")
        revoke_grant = f"REVOKE SET ON PARAMETER session_replication_role FROM {setter}"
        refused = [
            f"PGW_DATABASE_URL connects as {d.svc!r}, a member of {setter!r}, which may SET "
            f"session_replication_role: so may {d.svc!r} (after SET ROLE {setter}, if it does "
            f"not inherit that role's privileges) and {TRIGGERS_OFF}; fix: {revoke_grant} (or "
            f"take {d.svc!r} out of {setter!r}: REVOKE {setter} FROM {d.svc})"]
        assert d.check() == refused
        d.sql(f"ALTER ROLE {d.svc} NOINHERIT")  # it may still SET ROLE and then SET it
        assert d.check() == refused
        d.sql(f"SET ROLE {setter}", "SET session_replication_role = replica", as_=d.svc)
        d.sql(f"REVOKE {setter} FROM {d.svc}", f"GRANT {team} TO {d.seq}",
              f"GRANT {setter} TO {team}")
        assert d.check() == [
            f"PGW_SEQUENCER_DATABASE_URL connects as {d.seq!r}, a member of {setter!r} by way "
            f"of {team!r}, which may SET session_replication_role: so may {d.seq!r} (after SET "
            f"ROLE {setter}, if it does not inherit that role's privileges) and {TRIGGERS_OFF}; "
            f"fix: {revoke_grant} (or take {d.seq!r} out of {setter!r}: REVOKE {team} FROM "
            f"{d.seq})"]
        d.sql(revoke_grant)  # the fix it names
        assert d.check() == []


def test_the_owner_of_the_database_or_the_schema_is_refused(deployment: Deployment) -> None:
    d = deployment
    database = make_url(d.url).database
    d.sql(f'ALTER DATABASE "{database}" OWNER TO {d.svc}')
    try:
        assert d.check() == [
            f"PGW_DATABASE_URL connects as {d.svc!r}, which owns the database {database!r}: it "
            "may create schemas and make every session look in one of them first (ALTER "
            "DATABASE ... SET search_path), and so give the sequencer and every reader audit "
            "tables of its own, and drop the audit tables and create others in their place "
            "(the schema 'public' belongs to the database's owner); fix: ALTER DATABASE "
            f"{database} OWNER TO {d.owner}"]
        # what the check means: `public` is the database owner's, who may drop what is in it
        d.sql("DROP TABLE audit_tree_nodes", as_=d.svc)
        d.sql(f"ALTER DATABASE {database} OWNER TO {d.owner}")  # the fix it names
        assert d.check() == []
        d.sql(f"ALTER SCHEMA public OWNER TO {d.seq}")
        assert d.check() == [
            f"PGW_SEQUENCER_DATABASE_URL connects as {d.seq!r}, which owns the schema 'public': "
            "it may drop the audit tables and create others in their place; fix: ALTER SCHEMA "
            f"public OWNER TO {d.owner}"]
        d.sql(f"ALTER SCHEMA public OWNER TO {d.owner}")
        assert d.check() == []
    finally:  # the roles are dropped after the test; the database is dropped last
        d.sql(f'ALTER DATABASE "{database}" OWNER TO "{make_url(d.url).username}"')


def test_create_on_the_database_is_refused(deployment: Deployment) -> None:
    """A schema named like the sequencer's role would come first in its search_path."""
    d = deployment
    database = make_url(d.url).database
    d.sql(f'GRANT CREATE ON DATABASE "{database}" TO {d.svc}')
    try:
        found = d.check()
        assert len(found) == 1
        assert found[0].startswith(f"PGW_DATABASE_URL connects as {d.svc!r}, which may create "
                                   f"schemas in the database {database!r}")
        d.sql(found[0].rpartition("fix: ")[2])  # the fix it prints
        assert d.check() == []
    finally:
        d.sql(f'REVOKE CREATE ON DATABASE "{database}" FROM {d.svc}')


def test_fixes_quote_names_and_a_grant_to_public_is_named() -> None:
    """Names that need quoting in SQL are quoted; a grant to PUBLIC is revoked from PUBLIC."""
    facts = RoleFacts(
        name="Gateway", writes_log=False, table_owners={"audit_entries": "Owner"},
        roles=(Member("Gateway", False, True, False, ()),
               Member("user", False, False, False, ("user",))),
        schema=("public", "Owner"), database=("pgw", "Owner"),
        replica_setters=("PUBLIC", "user"))
    found = bypass("PGW_DATABASE_URL", facts, "")
    assert [p.rsplit("fix: ", 1)[-1] for p in found] == [
        'ALTER ROLE "Gateway" NOCREATEROLE',
        "REVOKE SET ON PARAMETER session_replication_role FROM PUBLIC",
        "REVOKE SET ON PARAMETER session_replication_role FROM \"user\" (or take 'Gateway' "
        "out of 'user': REVOKE \"user\" FROM \"Gateway\")"]
    assert "\"Owner\" too" in found[0]
