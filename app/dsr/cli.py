"""`pgw dsr list|show|extend|reject|retry` and `pgw holds list|place|release`: the same services
the API calls, with the operator as the audit actor."""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta
from typing import Any

from app.config import Settings
from app.operator import add_common, emit_json, fields, guarded, operator, table, transaction

DSR_COLUMNS = ("id", "type", "jurisdiction", "status", "due_at", "overdue", "subject_id")
HOLD_COLUMNS = ("id", "subject_id", "record_type", "until", "active", "reason")


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from app.audit import service as audit
    from app.clock import utcnow
    from app.dsr import service
    from app.runtime import opened

    caller = operator(args)
    due_within = timedelta(days=args.due_within) if args.due_within is not None else None
    with opened(settings) as runtime, transaction(runtime) as session:
        found = service.listing(session, status=args.status, type=args.type,
                                overdue=True if args.overdue else None, subject_id=None,
                                limit=args.limit, due_within=due_within)
        audit.record(session, caller=caller, action="dsr.listed",
                     details={"count": len(found), "status": args.status, "type": args.type,
                              "overdue": args.overdue or None})
        now = utcnow()
        shown = [service.dsr_dict(d, now=now) for d in found]
    if args.json:
        emit_json({"requests": shown})
    else:
        table(shown, DSR_COLUMNS)
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    from app.audit import service as audit
    from app.dsr import service
    from app.runtime import opened

    caller = operator(args)
    with opened(settings) as runtime, transaction(runtime) as session:
        dsr = service.get(session, args.id)
        audit.record(session, caller=caller, action="dsr.read", subject_id=dsr.subject_id,
                     resource=f"dsr:{dsr.id}", details={"type": dsr.type})
        shown = service.dsr_dict(dsr) | {"timeline": service.timeline(session, dsr)}
    if args.json:
        emit_json(shown)
        return 0
    timeline = shown.pop("timeline")
    fields(shown)
    print()  # noqa: T201
    table(timeline, ("at", "event", "actor"))
    return 0


def _change(args: argparse.Namespace, settings: Settings) -> int:
    from app.dsr import service
    from app.runtime import opened

    caller = operator(args)
    with opened(settings) as runtime, transaction(runtime) as session:
        if args.dsr_command == "extend":
            dsr = service.extend(session, runtime.policy, caller=caller, dsr_id=args.id,
                                 reason=args.reason)
        elif args.dsr_command == "reject":
            dsr = service.reject(session, caller=caller, dsr_id=args.id, reason=args.reason)
        else:
            dsr = service.retry(session, caller=caller, dsr_id=args.id)
        shown = service.dsr_dict(dsr)
    if args.json:
        emit_json(shown)
    else:
        print(f"{shown['id']}: {shown['status']}, due {shown['due_at']}")  # noqa: T201
    return 0


def _hold_list(args: argparse.Namespace, settings: Settings) -> int:
    from app.dsr import holds
    from app.runtime import opened

    with opened(settings) as runtime, transaction(runtime) as session:
        shown = [holds.hold_dict(h) for h in holds.listing(
            session, subject_id=args.subject, active_only=not args.all, limit=args.limit)]
    if args.json:
        emit_json({"legal_holds": shown})
    else:
        table(shown, HOLD_COLUMNS)
    return 0


def _until(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError("--until needs a time zone, e.g. 2027-01-01T00:00:00Z")
    return moment


def _hold_place(args: argparse.Namespace, settings: Settings) -> int:
    from app.dsr import holds
    from app.runtime import opened

    if (args.subject is None) == (args.record_type is None):
        raise SystemExit("pgw: name exactly one of --subject and --record-type")
    caller = operator(args)
    with opened(settings) as runtime, transaction(runtime) as session:
        shown = holds.hold_dict(holds.place(
            session, runtime.policy, caller=caller, subject_id=args.subject,
            record_type=args.record_type, reason=args.reason, until=args.until))
    if args.json:
        emit_json(shown)
    else:
        print(f"placed {shown['id']}")  # noqa: T201
    return 0


def _hold_release(args: argparse.Namespace, settings: Settings) -> int:
    from app.dsr import holds, service
    from app.runtime import opened

    caller = operator(args)
    with opened(settings) as runtime, transaction(runtime) as session:
        hold = holds.release(session, caller=caller, hold_id=args.id)
        session.flush()
        resumed = service.resume_released(session, caller=caller)
        shown: dict[str, Any] = holds.hold_dict(hold) | {"resumed_requests": resumed}
    if args.json:
        emit_json(shown)
    else:
        print(f"released {shown['id']}; resumed {len(resumed)} request(s)")  # noqa: T201
    return 0


def _days(value: str) -> int:
    days = int(value)
    if days < 0:
        raise argparse.ArgumentTypeError("must be 0 or more")
    return days


def register(commands: Any) -> None:
    from app.dsr.models import DsrStatus
    from app.dsr.service import TYPES

    dsr = commands.add_parser("dsr", help="data-subject requests")
    sub = dsr.add_subparsers(dest="dsr_command", required=True)
    listing = sub.add_parser("list", help="requests by deadline, soonest first")
    listing.add_argument("--status", choices=list(DsrStatus))
    listing.add_argument("--type", choices=TYPES)
    listing.add_argument("--overdue", action="store_true", help="only open ones past deadline")
    listing.add_argument("--due-within", type=_days, metavar="DAYS",
                         help="only open ones due within DAYS (overdue ones included)")
    listing.add_argument("--limit", type=int, default=100)
    listing.set_defaults(handler=guarded(_list))
    show = sub.add_parser("show", help="one request with its timeline")
    show.add_argument("id")
    show.set_defaults(handler=guarded(_show))
    extend = sub.add_parser("extend", help="extend the deadline once, where the law allows")
    reject = sub.add_parser("reject", help="refuse a request not yet being carried out")
    retry = sub.add_parser("retry", help="run a failed request again")
    for command in (extend, reject, retry):
        command.add_argument("id")
        if command is not retry:
            command.add_argument("--reason", required=True)
        command.set_defaults(handler=guarded(_change))
    for command in (listing, show, extend, reject, retry):
        add_common(command)

    holds = commands.add_parser("holds", help="legal holds")
    hsub = holds.add_subparsers(dest="holds_command", required=True)
    hlist = hsub.add_parser("list", help="active holds, newest first")
    hlist.add_argument("--subject")
    hlist.add_argument("--all", action="store_true", help="released and lapsed ones too")
    hlist.add_argument("--limit", type=int, default=100)
    hlist.set_defaults(handler=guarded(_hold_list))
    place = hsub.add_parser("place", help="keep a subject's data, or a record type, from "
                            "erasure and retention")
    place.add_argument("--subject")
    place.add_argument("--record-type")
    place.add_argument("--reason", required=True)
    place.add_argument("--until", type=_until, help="ISO 8601 with zone; default: until released")
    place.set_defaults(handler=guarded(_hold_place))
    release = hsub.add_parser("release", help="end a hold; requests it kept resume")
    release.add_argument("id")
    release.set_defaults(handler=guarded(_hold_release))
    for command in (hlist, place, release):
        add_common(command)
