"""`pgw webhooks list|add|disable|deliveries`: the API's checks on URLs and event names apply;
the signing secret is shown once, by `add`."""

from __future__ import annotations

import argparse
from typing import Any

from app.config import Settings
from app.operator import add_common, emit_json, guarded, operator, table, transaction


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from app.runtime import opened
    from app.webhooks import service

    with opened(settings) as runtime, transaction(runtime) as session:
        shown = [service.webhook_dict(w) for w in service.listing(session)]
    if args.json:
        emit_json({"webhooks": shown})
    else:
        table(shown, ("id", "url", "events", "created_at"))
    return 0


def _add(args: argparse.Namespace, settings: Settings) -> int:
    from app.runtime import opened
    from app.webhooks import outbox, service, targets

    caller = operator(args)
    events = [e for part in args.events for e in part.split(",") if e]
    with opened(settings, need_keys=True) as runtime, transaction(runtime) as session:
        webhook = service.register(session, caller=caller, url=args.url, events=events,
                                   allow=targets.allow_list(settings.webhook_allow_hosts),
                                   require_https=not settings.is_dev)
        shown = service.webhook_dict(webhook) | {
            "secret": outbox.secret(session, runtime.require_keyring(), webhook.id)}
    if args.json:
        emit_json(shown)
    else:
        print(f"registered {shown['id']} for {','.join(map(str, webhook.events))}")  # noqa: T201
        print(f"signing secret (shown only now): {shown['secret']}")  # noqa: T201
    return 0


def _disable(args: argparse.Namespace, settings: Settings) -> int:
    from app.runtime import opened
    from app.webhooks import service

    with opened(settings) as runtime, transaction(runtime) as session:
        service.disable(session, caller=operator(args), webhook_id=args.id)
    if args.json:
        emit_json({"id": args.id, "disabled": True})
    else:
        print(f"disabled {args.id}")  # noqa: T201
    return 0


def _deliveries(args: argparse.Namespace, settings: Settings) -> int:
    from app.runtime import opened
    from app.webhooks import service

    with opened(settings) as runtime, transaction(runtime) as session:
        shown = service.deliveries(session, webhook_id=args.id, limit=args.limit)
    if args.json:
        emit_json({"deliveries": shown})
    else:
        table(shown, ("job_id", "event_type", "state", "attempts", "created_at", "last_error"))
    return 0


def register(commands: Any) -> None:
    webhooks = commands.add_parser("webhooks", help="webhook subscribers and their deliveries")
    sub = webhooks.add_subparsers(dest="webhooks_command", required=True)
    listing = sub.add_parser("list", help="active subscribers")
    listing.set_defaults(handler=guarded(_list))
    add = sub.add_parser("add", help="subscribe a URL; prints the signing secret once")
    add.add_argument("url")
    add.add_argument("--events", action="append", required=True,
                     help="comma-separated names, a family (dsr.*) or *")
    add.set_defaults(handler=guarded(_add))
    disable = sub.add_parser("disable", help="stop deliveries to a subscriber")
    disable.add_argument("id")
    disable.set_defaults(handler=guarded(_disable))
    deliveries = sub.add_parser("deliveries", help="a subscriber's deliveries, newest first")
    deliveries.add_argument("id")
    deliveries.add_argument("--limit", type=int, default=50)
    deliveries.set_defaults(handler=guarded(_deliveries))
    for command in (listing, add, disable, deliveries):
        add_common(command)
