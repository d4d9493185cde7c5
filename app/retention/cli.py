"""`pgw retention plan|run`."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import Any

from app.config import Settings


def _at(value: str | None) -> datetime | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise SystemExit("pgw: --at needs a time zone, e.g. 2027-01-01T00:00:00Z")
    return moment


def _print(report: Any, verb: str) -> None:
    counts = report.as_dict()
    if not counts:
        print(f"nothing {verb}")  # noqa: T201
        return
    width = max(len(name) for name in counts)
    for name, actions in counts.items():
        shown = ", ".join(f"{action} {n}" for action, n in actions.items())
        print(f"{name:<{width}}  {shown}")  # noqa: T201


def _plan(args: argparse.Namespace, settings: Settings) -> int:
    from app.retention import sweep
    from app.runtime import opened

    with opened(settings) as runtime:
        _print(sweep.plan(runtime.transaction, runtime.policy, now=_at(args.at)), "is due")
    return 0


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from app.progress import counter
    from app.retention import sweep
    from app.runtime import opened

    show = counter(args.progress)
    handled = 0

    def on_batch(batch: sweep.Batch) -> None:
        # The size of a run is not known before it: the count of what it did so far.
        nonlocal handled
        handled += sum(sum(actions.values()) for actions in batch.report.counts.values())
        show(f"retention: batch {batch.number} ({batch.phase}), {handled} handled")

    with opened(settings) as runtime:
        report = sweep.run(runtime.transaction, runtime.policy, now=_at(args.at),
                           on_batch=on_batch)
    if handled:
        show("")
    _print(report, "was due")
    return 0


def register(commands: Any) -> None:
    retention = commands.add_parser("retention", help="apply retention periods")
    sub = retention.add_subparsers(dest="retention_command", required=True)
    plan = sub.add_parser("plan", help="print what the next sweep would do, changing nothing")
    plan.add_argument("--at", help="as if it were this time (ISO 8601 with zone)")
    plan.set_defaults(handler=_plan)
    run = sub.add_parser("run", help="delete or de-identify what is due, holds respected")
    run.add_argument("--at", help="as if it were this time (ISO 8601 with zone)")
    run.add_argument("--progress", action="store_true",
                     help="batches done on stderr (default: when it is a terminal)")
    run.set_defaults(handler=_run)
