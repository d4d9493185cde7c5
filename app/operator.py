"""What the operator commands (`pgw dsr`, `holds`, `notices`, `consents`, `access`, `webhooks`)
share: the operator as the audit actor, output as a table or JSON, errors as one line.

Output convention: `--json` prints one JSON document on stdout; a listing is one object with
the list under a named key (as the API answers), so `jq` reads both alike. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import functools
import getpass
import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import SQLAlchemyError

from app.auth.guard import Caller
from app.auth.scopes import Scope
from app.config import Settings
from app.errors import GatewayError

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from app.runtime import Runtime

OPERATOR_ENV = "PGW_OPERATOR"
Handler = Callable[[argparse.Namespace, Settings], int]


def operator(args: argparse.Namespace) -> Caller:
    """`operator:<name>`, from --operator, PGW_OPERATOR or the OS user. Whoever runs `pgw`
    against the database can do anything, so the caller holds every scope; the name is what
    the audit log keeps."""
    name = getattr(args, "operator", None) or os.environ.get(OPERATOR_ENV) or getpass.getuser()
    return Caller(sub=f"operator:{name}", roles=("operator",),
                  scopes=frozenset(scope.value for scope in Scope))


def operator_name(caller: Caller) -> str:
    return caller.sub.removeprefix("operator:")


@contextmanager
def transaction(runtime: Runtime) -> Iterator[Session]:
    """A session that commits at the end; on a refusal the change rolls back but its audited
    denial is kept, as the API's session does."""
    from app.audit import service as audit

    with runtime.session_factory() as session:
        try:
            yield session
        except GatewayError:
            kept = audit.take_unsuccessful(session)
            session.rollback()
            if kept:
                audit.requeue(session, kept)
                session.commit()
            raise
        session.commit()


def add_common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--operator", help=f"your name in the audit log (default: "
                        f"${OPERATOR_ENV}, else the OS user)")
    parser.add_argument("--json", action="store_true",
                        help="one JSON document on stdout instead of a table")


def guarded(handler: Handler) -> Handler:
    """A refusal (unknown id, bad state, invalid input) is one line on stderr and exit 1."""
    @functools.wraps(handler)
    def run(args: argparse.Namespace, settings: Settings) -> int:
        try:
            return handler(args, settings)
        except GatewayError as exc:
            named = [e["field"] for e in exc.extra.get("errors", []) if e.get("field")]
            where = f" ({', '.join(named)})" if named else ""
            print(f"pgw: {exc.detail}{where}", file=sys.stderr)  # noqa: T201
            return 1
        except SQLAlchemyError as exc:  # the message may hold the URL: only the kind is shown
            print(f"pgw: database error ({type(exc).__name__}); check PGW_DATABASE_URL and "  # noqa: T201
                  "that it is migrated (pgw migrate)", file=sys.stderr)
            return 1
    return run


def emit_json(document: Any) -> None:
    print(json.dumps(document, ensure_ascii=False, default=str))  # noqa: T201


def table(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """A compact, aligned table on stdout; `-` for empty cells."""
    cells = [[_cell(row.get(c)) for c in columns] for row in rows]
    widths = [max([len(c.upper())] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    print("  ".join(c.upper().ljust(w) for c, w in zip(columns, widths, strict=True))  # noqa: T201
          .rstrip())
    for row in cells:
        print("  ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())  # noqa: T201


def fields(document: dict[str, Any]) -> None:
    """One `name: value` line per field of a single object."""
    width = max(len(k) for k in document)
    for key, value in document.items():
        shown = json.dumps(value, ensure_ascii=False) if isinstance(value, dict | list) \
            else _cell(value)
        print(f"{key:<{width}}  {shown}")  # noqa: T201


def _cell(value: Any) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)
