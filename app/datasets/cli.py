"""`pgw datasets anonymize IN --k 5 --l 2 --out OUT`: anonymise a CSV or JSON Lines file."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.config import Settings


def _anonymize(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth.guard import Caller
    from app.datasets import files, service
    from app.errors import GatewayError
    from app.progress import bar
    from app.runtime import opened

    try:
        rows = files.read(args.input)
    except (GatewayError, UnicodeDecodeError, OSError) as exc:
        detail = exc.detail if isinstance(exc, GatewayError) else str(exc)
        print(f"pgw: {args.input}: {detail}", file=sys.stderr)  # noqa: T201
        return 1
    with opened(settings) as runtime, runtime.transaction() as session:
        try:
            result = service.release(
                session, runtime.policy, caller=Caller.system("cli"),
                record_type=args.record_type, purpose=args.purpose, rows=rows, k=args.k,
                l=args.l, max_suppression=args.max_suppression, progress=bar)
        except GatewayError as exc:
            session.commit()  # the refusal is audited
            print(f"\npgw: {exc.detail}", file=sys.stderr)  # noqa: T201
            return 1
    files.write(args.out, result.rows)
    print(f"\n{json.dumps(result.report, ensure_ascii=False)}")  # noqa: T201
    return 0


def register(commands: Any) -> None:
    datasets = commands.add_parser("datasets", help="anonymised releases")
    sub = datasets.add_subparsers(dest="datasets_command", required=True)
    anonymize = sub.add_parser("anonymize", help="anonymise a CSV or JSON Lines file")
    anonymize.add_argument("input", type=Path, help="rows: .csv or .jsonl")
    anonymize.add_argument("--out", type=Path, required=True, help=".csv or .jsonl")
    anonymize.add_argument("--record-type", default="customer_profile")
    anonymize.add_argument("--purpose", default="legal_compliance",
                           help="why it is released; its legal basis may not be consent")
    anonymize.add_argument("--k", type=int, default=5)
    anonymize.add_argument("--l", type=int, default=2)
    anonymize.add_argument("--max-suppression", type=float, default=0.05)
    anonymize.set_defaults(handler=_anonymize)
