"""`db.copy_rows`, the sequencer's bulk write: rows arrive as an INSERT would store them, in the
session's transaction. On PostgreSQL by COPY (the tests that matter most); on SQLite the same
calls go through one executemany INSERT."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Engine,
    MetaData,
    String,
    Table,
    select,
    text,
)
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from app.db import UTCDateTime, begin_lazily, copy_rows, make_engine, statements_sent

metadata = MetaData()
things = Table("copy_things", metadata, Column("id", BigInteger, primary_key=True),
               Column("at", UTCDateTime), Column("name", String(200)),
               Column("details", JSON), Column("label_text", String(20), key="label"))
SECRET = "alice@example.com"


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    metadata.create_all(engine)
    yield engine
    engine.dispose()


def _rows() -> list[dict[str, object]]:
    tricky = "tab\there, new\nline, back\\slash, quote\" and 中文 \\N"
    east = timezone(timedelta(hours=8))
    return [
        {"id": 1, "at": datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC), "name": tricky,
         "details": {"list": ["a", 1, 2.5, None, True], "nested": {"k": tricky}},
         "label": "first"},
        {"id": 2, "at": datetime(2026, 11, 30, 20, 0, tzinfo=east), "name": None,
         "details": None, "label": None},
    ]


def test_rows_arrive_as_an_insert_stores_them(engine: Engine) -> None:
    with Session(engine) as session:
        session.execute(text("SELECT 1"))
        before = statements_sent(session)
        copy_rows(session, things, _rows())
        copy_rows(session, things, [])  # nothing to write: no statement
        assert statements_sent(session) == (before or 0) + 1
        session.commit()
    with Session(engine) as session:
        stored = [dict(row._mapping) for row in session.execute(
            select(things).order_by(things.c.id))]
        # JSON's None is JSON null, as an INSERT stores it, not SQL NULL
        assert session.scalar(select(things.c.id).where(things.c.details.is_(None))) is None
    expected = _rows()
    expected[1]["at"] = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)  # the same moment, in UTC
    # a column whose key differs from its name is written by its name
    assert stored == [{("label_text" if key == "label" else key): value
                       for key, value in row.items()} for row in expected]


def test_a_rollback_takes_the_rows_with_it(engine: Engine) -> None:
    with Session(engine) as session:
        copy_rows(session, things, _rows())
        session.rollback()
    with Session(engine) as session:
        assert session.scalars(select(things.c.id)).all() == []


def test_a_failure_is_sqlalchemys_error_and_quotes_no_value(engine: Engine,
                                                             dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("SQLite enforces no string length; its INSERT's errors are SQLAlchemy's")
    row = {**_rows()[0], "label": SECRET + " is much too long for the column"}
    with Session(engine) as session, pytest.raises(DBAPIError) as raised:
        copy_rows(session, things, [row])
    assert getattr(raised.value.orig, "sqlstate", None) == "22001"  # string data right truncation
    assert SECRET not in str(raised.value)
    assert "too long" in str(raised.value)


def test_refuses_to_commit_on_its_own(engine: Engine, dialect: str) -> None:
    if dialect != "postgresql":
        pytest.skip("SQLite has no read without a transaction (db.begin_lazily)")
    with Session(engine) as session:
        begin_lazily(session)
        with pytest.raises(RuntimeError, match="begin a transaction first"):
            copy_rows(session, things, _rows())
