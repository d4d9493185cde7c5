"""`pgw access list|approve|deny`: decide elevated-access requests from the command line.

The four-eyes rule holds here as in the API: an operator never decides a request filed under
their own name, whether as `operator:<name>` or as the token subject `<name>`."""

from __future__ import annotations

import argparse
from typing import Any

from app.config import Settings
from app.operator import add_common, emit_json, guarded, operator, operator_name, table, transaction

COLUMNS = ("id", "status", "requester", "subject_id", "fields", "purpose", "created_at",
           "decided_by")


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from app.access import service
    from app.access.schemas import request_dict
    from app.runtime import opened

    caller = operator(args)
    with opened(settings) as runtime, transaction(runtime) as session:
        shown = [request_dict(r, show_subject=True) for r in service.listing(
            session, caller=caller, status=args.status, limit=args.limit)]
    if args.json:
        emit_json({"access_requests": shown})
    else:
        table(shown, COLUMNS)
    return 0


def _decide(args: argparse.Namespace, settings: Settings) -> int:
    from app.access import service
    from app.access.schemas import request_dict
    from app.runtime import opened

    caller = operator(args)
    approve = args.access_command == "approve"
    with opened(settings) as runtime, transaction(runtime) as session:
        decided = service.decide(session, caller=caller, request_id=args.id, approve=approve,
                                 reason=args.reason, also_known_as=operator_name(caller))
        shown = request_dict(decided, show_subject=True)
    if args.json:
        emit_json(shown)
    else:
        until = f" until {shown['expires_at']}" if shown["expires_at"] else ""
        print(f"{shown['id']}: {shown['status']}{until}")  # noqa: T201
    return 0


def register(commands: Any) -> None:
    from app.access.models import AccessRequestStatus

    access = commands.add_parser("access", help="elevated-access requests (four eyes)")
    sub = access.add_subparsers(dest="access_command", required=True)
    listing = sub.add_parser("list", help="every request, newest first")
    listing.add_argument("--status", choices=list(AccessRequestStatus))
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=guarded(_list))
    approve = sub.add_parser("approve", help="grant a request filed by someone else")
    approve.add_argument("id")
    approve.add_argument("--reason")
    deny = sub.add_parser("deny", help="refuse a request, saying why")
    deny.add_argument("id")
    deny.add_argument("--reason", required=True)
    for command in (approve, deny):
        command.set_defaults(handler=guarded(_decide))
    for command in (listing, approve, deny):
        add_common(command)
