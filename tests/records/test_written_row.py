"""`service.create` inserts the record with a Core statement and answers with an instance made
from the same values, outside the session: that instance must be the row the database holds,
column for column, as the ORM reads it back (defaults, the version counter, times)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import inspect

from app.auth.guard import Caller
from app.records import service
from app.records.models import Record
from app.runtime import Runtime

CALLER = Caller(sub="svc-crm", roles=("support_agent",), scopes=frozenset({"records:write"}))


def test_the_written_record_is_the_row_the_database_holds(runtime: Runtime) -> None:
    keys = service.Keys.of(runtime, runtime.require_keyring())
    with runtime.transaction() as session:
        written = service.create(
            session, runtime.policy, keys, caller=CALLER, subject_id="row-1",
            purpose="account_management", record_type="customer_profile",
            data={"name": "Li Na", "email": "li.na@example.com",
                  "notes": "Call back on 13912345678 after six"})
        assert written.record not in session  # nothing the session would flush again
    with runtime.session_factory() as session:
        stored = session.get(Record, written.record.id)
        assert stored is not None
        columns = [column.key for column in inspect(Record).columns]
        assert {name: getattr(written.record, name) for name in columns} == \
            {name: getattr(stored, name) for name in columns}
        assert stored.version == 1
        # a later change through the ORM versions it as before
        stored.updated_at += timedelta(seconds=1)
        session.commit()
        assert stored.version == 2
