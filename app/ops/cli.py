"""`pgw init` and `pgw check`: the environment to set goes to stdout, everything else to stderr."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import Any

from app.config import Settings
from app.keys.files import KeyFileError
from app.keys.kek import KekUnavailable
from app.ops import setup


def _say(line: str) -> None:
    print(line, file=sys.stderr)  # noqa: T201


def _init(args: argparse.Namespace, settings: Settings) -> int:
    try:
        result = setup.init(settings)
    except (KeyFileError, KekUnavailable, OSError) as exc:
        _say(f"pgw init: {exc}")
        return 2
    if args.json:
        print(json.dumps({"created": result.created, "kept": result.kept,  # noqa: T201
                          "environment": result.environment, "notes": result.notes,
                          "printed_secrets": result.printed_secrets}, indent=2))
        return 0
    for line in result.created:
        _say(f"created {line}")
    for line in result.kept:
        _say(f"kept {line}")
    for note in result.notes:
        _say(f"note: {note}")
    if result.printed_secrets:
        _say(f"the lines below hold a secret ({', '.join(result.printed_secrets)}), printed "
             "only now")
    _say("set this environment (e.g. `eval \"$(pgw init)\"` or save it to an env file):")
    for line in result.exports():
        print(line)  # noqa: T201
    return 0


def _check(args: argparse.Namespace, settings: Settings) -> int:
    # said once in the list below, not also as log lines
    logging.getLogger("alembic").setLevel(logging.WARNING)
    logging.getLogger("pgw.auth.jwks").setLevel(logging.ERROR)
    found = setup.problems(settings)
    if args.json:
        print(json.dumps({"ok": not found, "env": settings.env.value,  # noqa: T201
                          "problems": found}, indent=2))
    elif found:
        _say(f"pgw check: {len(found)} configuration problem{'s' if len(found) > 1 else ''} "
             f"(PGW_ENV={settings.env.value}):")
        for problem in found:
            _say(f"  - {problem}")
    else:
        print(f"configuration ok (PGW_ENV={settings.env.value})")  # noqa: T201
    return 1 if found else 0


def register(commands: Any) -> None:
    init = commands.add_parser(
        "init", help="create the keys this configuration needs (never overwrites) and print "
                     "the environment to set")
    init.add_argument("--json", action="store_true", help="one JSON document on stdout")
    init.set_defaults(handler=_init)
    check = commands.add_parser(
        "check", help="report every configuration problem at once (exit 1 if any)")
    check.add_argument("--json", action="store_true", help="one JSON document on stdout")
    check.set_defaults(handler=_check, config_error_exit=1)
