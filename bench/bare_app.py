"""The framework floor for `gateway_load.py`: FastAPI storing and returning the same JSON in the
same database, with nothing else (no auth, checks, encryption, scanning or audit).

Run: BARE_DATABASE_URL=... uvicorn bench.bare_app:app --workers N
"""

from __future__ import annotations

import os
import secrets
from typing import Any

from fastapi import FastAPI, HTTPException
from sqlalchemy import JSON, Column, MetaData, String, Table, insert, select

from app.db import make_engine

metadata = MetaData()
items = Table("bare_items", metadata, Column("id", String(40), primary_key=True),
              Column("body", JSON, nullable=False))
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
