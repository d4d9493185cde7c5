"""`pgw consent init-key|receipt-key`: the key that signs consent receipts;
`pgw notices list|show|register` and `pgw consents list|show` for operators."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from app.config import Settings
from app.keys import files
from app.keys.signing import generate_pem, load_signer
from app.operator import add_common, emit_json, fields, guarded, operator, table, transaction

EVENT_COLUMNS = ("event_id", "purpose", "event", "notice_id", "notice_version", "channel",
                 "recorded_at")


def _init_key(args: argparse.Namespace, settings: Settings) -> int:
    created = files.write_new(settings.receipt_key_file, generate_pem())
    print(f"{'created' if created else 'kept existing'} receipt signing key "  # noqa: T201
          f"{settings.receipt_key_file}")
    return 0


def _receipt_key(args: argparse.Namespace, settings: Settings) -> int:
    signer = load_signer(settings.receipt_key_file, create=settings.is_dev)
    print(signer.public_pem(), end="")  # noqa: T201
    return 0


def _notices(args: argparse.Namespace, settings: Settings) -> int:
    from app.consent import service
    from app.errors import NotFound
    from app.runtime import opened

    one = args.notices_command == "show"
    with opened(settings) as runtime, transaction(runtime) as session:
        found = service.notices(session, notice_id=args.notice_id if one else None)
        shown = [service.notice_dict(n, text=one) for n in found
                 if not one or args.version is None or n.version == args.version]
    if one and not shown:
        raise NotFound("no such notice")
    if args.json:
        emit_json({"notices": shown})
    elif one:
        for notice in shown:
            fields(notice)
    else:
        table(shown, ("notice_id", "version", "language", "requires_reconsent", "created_at"))
    return 0


def _register_notice(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    from app.consent import service
    from app.consent.schemas import NoticeIn
    from app.errors import Invalid
    from app.runtime import opened

    try:
        body = NoticeIn(notice_id=args.notice_id, version=args.version, language=args.language,
                        text=args.text_file.read_text(encoding="utf-8"),
                        requires_reconsent=args.requires_reconsent)
    except ValidationError as exc:
        error = exc.errors()[0]
        raise Invalid(error["msg"], field=".".join(map(str, error["loc"]))) from None
    with opened(settings) as runtime, transaction(runtime) as session:
        shown = service.notice_dict(service.register_notice(
            session, caller=operator(args), **body.model_dump()))
    if args.json:
        emit_json(shown)
    else:
        print(f"registered {shown['notice_id']} version {shown['version']} "  # noqa: T201
              f"({shown['language']}), sha256 {shown['sha256']}")
    return 0


def _consents(args: argparse.Namespace, settings: Settings) -> int:
    from app.audit import service as audit
    from app.consent import service
    from app.runtime import opened

    caller = operator(args)
    with opened(settings) as runtime, transaction(runtime) as session:
        if args.consents_command == "show":
            event = service.get_event(session, args.event_id)
            audit.record(session, caller=caller, action="consent.read",
                         subject_id=event.subject_id, details={"events": 1})
            one = {"subject_id": event.subject_id} | service.event_dict(event)
        else:
            events = service.history(session, args.subject)
            audit.record(session, caller=caller, action="consent.read",
                         subject_id=args.subject, details={"events": len(events)})
            history = [service.event_dict(e) for e in events]
    if args.consents_command == "show":
        emit_json(one) if args.json else fields(one)
    elif args.json:
        emit_json({"subject_id": args.subject, "history": history})
    else:
        table(history, EVENT_COLUMNS)
    return 0


def _register_operator_commands(commands: Any) -> None:
    notices = commands.add_parser("notices", help="the notices consents answer")
    nsub = notices.add_subparsers(dest="notices_command", required=True)
    nlist = nsub.add_parser("list", help="every version and language")
    nshow = nsub.add_parser("show", help="one notice's versions, with their text")
    nshow.add_argument("notice_id")
    nshow.add_argument("--version", type=int)
    for command in (nlist, nshow):
        command.set_defaults(handler=guarded(_notices))
    nreg = nsub.add_parser("register", help="register a notice text; a changed text is a "
                           "new version")
    nreg.add_argument("notice_id")
    nreg.add_argument("--version", type=int, required=True)
    nreg.add_argument("--language", required=True, help="e.g. en, zh-CN")
    nreg.add_argument("--text-file", type=Path, required=True)
    nreg.add_argument("--requires-reconsent", action=argparse.BooleanOptionalAction,
                      default=True)
    nreg.set_defaults(handler=guarded(_register_notice))

    consents = commands.add_parser("consents", help="a subject's consent history")
    csub = consents.add_subparsers(dest="consents_command", required=True)
    clist = csub.add_parser("list", help="every consent event of a subject, oldest first")
    clist.add_argument("--subject", required=True)
    cshow = csub.add_parser("show", help="one consent event")
    cshow.add_argument("event_id", type=int)
    for command in (clist, cshow):
        command.set_defaults(handler=guarded(_consents))
    for command in (nlist, nshow, nreg, clist, cshow):
        add_common(command)


def register(commands: Any) -> None:
    parser = commands.add_parser("consent", help="consent receipts")
    sub = parser.add_subparsers(dest="consent_command", required=True)
    sub.add_parser("init-key", help="create the receipt signing key if it is missing")\
        .set_defaults(handler=_init_key)
    sub.add_parser("receipt-key", help="print the public key that verifies receipts (PEM)")\
        .set_defaults(handler=_receipt_key)
    _register_operator_commands(commands)
