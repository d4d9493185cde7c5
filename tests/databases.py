"""A fresh, migrated database per test: a copied SQLite file, or a PostgreSQL database cloned
from a migrated template. Real isolation, also for tests that run servers and processes."""

from __future__ import annotations

import os
import secrets
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from app.db import normalise_url, upgrade

POSTGRES_ENV = "PGW_TEST_DATABASE_URL"


def postgres_url() -> str | None:
    url = os.environ.get(POSTGRES_ENV, "")
    return normalise_url(url) if url.startswith("postgres") else None


def _admin_dsn(url: str) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    return parsed.render_as_string(hide_password=False)


class DatabaseFactory:
    def __init__(self, workdir: Path):
        self.workdir = workdir
        self.pg_url = postgres_url()
        self.template: str | None = None
        self._created: list[str] = []

    @property
    def dialect(self) -> str:
        return "postgresql" if self.pg_url else "sqlite"

    def _prepare(self) -> None:
        if self.template is not None:
            return
        if self.pg_url is None:
            path = self.workdir / "template.sqlite3"
            upgrade(f"sqlite:///{path}")
            self.template = str(path)
            return
        name = f"pgw_tmpl_{os.getpid()}"
        with psycopg.connect(_admin_dsn(self.pg_url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        upgrade(make_url(self.pg_url).set(database=name).render_as_string(hide_password=False))
        self.template = name

    def new(self, *, migrated: bool = True) -> str:
        """URL of a new database, migrated to head unless `migrated` is false."""
        self._prepare()
        if self.pg_url is None:
            path = self.workdir / f"db-{uuid.uuid4().hex[:12]}.sqlite3"
            if migrated:
                assert self.template is not None
                shutil.copyfile(self.template, path)
            return f"sqlite:///{path}"
        name = f"pgw_t_{uuid.uuid4().hex[:12]}"
        template = f' TEMPLATE "{self.template}"' if migrated else ""
        with psycopg.connect(_admin_dsn(self.pg_url), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"{template}')
        self._created.append(name)
        return make_url(self.pg_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        if self.pg_url is None:
            return
        names = [*self._created, *([self.template] if self.template else [])]
        with psycopg.connect(_admin_dsn(self.pg_url), autocommit=True) as conn:
            for name in names:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def as_role(url: str, role: str) -> str:
    """The PostgreSQL URL `url` logging in as `role` instead (trust authentication)."""
    return make_url(url).set(username=role).render_as_string(hide_password=False)


@contextmanager
def login_roles(url: str, *kinds: str) -> Iterator[dict[str, str]]:
    """New PostgreSQL login roles, one per kind ({kind: name}), dropped afterwards with what
    they own and were granted in the database of `url`."""
    names = {kind: f"pgw_{kind}_{secrets.token_hex(4)}" for kind in kinds}
    admin = _admin_dsn(url)
    with psycopg.connect(admin, autocommit=True) as conn:
        for name in names.values():
            conn.execute(f'CREATE ROLE "{name}" LOGIN')
    try:
        yield names
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            for name in names.values():
                conn.execute(f'DROP OWNED BY "{name}"')
                conn.execute(f'DROP ROLE "{name}"')
