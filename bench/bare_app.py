"""The framework floor for `gateway_load.py`: FastAPI storing and returning the same JSON in the
same database, with nothing else (no auth, checks, encryption, scanning or audit).

Under `/audited` the same two endpoints also do the one thing the gateway may not leave out of
any request: they add an audit row (who, what, which item, a few details) in the same
transaction and commit it before answering, as a read of personal data must. Their throughput
against the plain ones is how much of the floor any audited service can reach here.

Run: BARE_DATABASE_URL=... uvicorn bench.bare_app:app --workers N
"""

from __future__ import annotations

import os
import secrets
from datetime import datetime
from typing import Any

from fastapi import FastAPI, HTTPException
from sqlalchemy import (
    JSON,
    Column,
    DateTime,
    Integer,
    MetaData,
    String,
    Table,
    insert,
    select,
)
from sqlalchemy.engine import Connection

from app.db import make_engine

metadata = MetaData()
items = Table("bare_items", metadata, Column("id", String(40), primary_key=True),
              Column("body", JSON, nullable=False))
audit = Table("bare_audit", metadata, Column("id", Integer, primary_key=True, autoincrement=True),
              Column("ts", DateTime, nullable=False), Column("actor", String(255)),
              Column("action", String(64)), Column("resource", String(255)),
              Column("details", JSON, nullable=False))
engine = make_engine(os.environ.get("BARE_DATABASE_URL", "sqlite:///bare.db"))
app = FastAPI()


def create_table() -> None:
    metadata.create_all(engine)


@app.post("/items", status_code=201)
def store(body: dict[str, Any]) -> dict[str, Any]:
    item_id = secrets.token_hex(12)
    with engine.begin() as connection:
        connection.execute(insert(items).values(id=item_id, body=body))
    return {"id": item_id, "data": body["data"]}


@app.get("/items/{item_id}")
def fetch(item_id: str) -> dict[str, Any]:
    with engine.connect() as connection:
        body = connection.execute(select(items.c.body).where(items.c.id == item_id)).scalar()
    if body is None:
        raise HTTPException(404)
    return {"id": item_id, "data": body["data"]}


def _audited(connection: Connection, action: str, item_id: str) -> None:
    connection.execute(insert(audit).values(
        ts=datetime.now(), actor="bench", action=action, resource=f"item:{item_id}",
        details={"fields": ["name", "email", "phone"]}))


@app.post("/audited/items", status_code=201)
def store_audited(body: dict[str, Any]) -> dict[str, Any]:
    item_id = secrets.token_hex(12)
    with engine.begin() as connection:
        connection.execute(insert(items).values(id=item_id, body=body))
        _audited(connection, "item.created", item_id)
    return {"id": item_id, "data": body["data"]}


@app.get("/audited/items/{item_id}")
def fetch_audited(item_id: str) -> dict[str, Any]:
    with engine.begin() as connection:
        body = connection.execute(select(items.c.body).where(items.c.id == item_id)).scalar()
        if body is None:
            raise HTTPException(404)
        _audited(connection, "item.read", item_id)
    return {"id": item_id, "data": body["data"]}
