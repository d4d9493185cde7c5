"""`pgw worker`: run background jobs in the foreground."""

from __future__ import annotations

import argparse
import signal
import threading
from typing import Any

from app.config import Settings


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from app.jobs import worker
    from app.runtime import opened

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    with opened(settings, need_keys=True) as runtime:
        ran = worker.run(runtime, stop=stop, until_idle=args.until_idle)
    if args.until_idle:
        print(f"ran {ran} job(s)")  # noqa: T201
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser("worker", help="run background jobs (data-subject requests, "
                                 "retention, webhooks, key destruction)")
    parser.add_argument("--until-idle", action="store_true",
                        help="stop when no job is due instead of waiting for more")
    parser.set_defaults(handler=_worker)
