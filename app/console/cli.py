"""`pgw console sign-out SUB`: end every console session of one person at once (a lost laptop,
a leaver), on every process, audited with the operator as the actor."""

from __future__ import annotations

import argparse
from typing import Any

from app.config import Settings
from app.operator import add_common, emit_json, guarded, operator, transaction


def _sign_out(args: argparse.Namespace, settings: Settings) -> int:
    from app.audit import service as audit
    from app.console import sessions
    from app.runtime import opened

    caller = operator(args)
    with opened(settings) as runtime, transaction(runtime) as session:
        ended = sessions.end_all(session, sub=args.sub)
        audit.record(session, caller=caller, action="console.sessions_revoked",
                     details={"sub": args.sub, "sessions": ended})
    if args.json:
        emit_json({"sub": args.sub, "sessions_ended": ended})
    else:
        print(f"{args.sub}: {ended} console session(s) ended")  # noqa: T201
    return 0


def register(commands: Any) -> None:
    console = commands.add_parser("console", help="the staff console's sessions")
    sub = console.add_subparsers(dest="console_command", required=True)
    sign_out = sub.add_parser("sign-out", help="end every console session of one person")
    sign_out.add_argument("sub", help="the person's subject (as the audit log names them)")
    sign_out.set_defaults(handler=guarded(_sign_out))
    add_common(sign_out)
