"""`pgw datasets anonymize IN --k 5 --l 2 --out OUT`: anonymise a CSV or JSON Lines file."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path
from typing import Any

from app.config import Settings


def _read(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            return [dict(row) for row in csv.DictReader(handle)]
        return [json.loads(line) for line in handle if line.strip()]


def _write(path: Path, rows: list[dict[str, Any]]) -> None:
    with path.open("w", encoding="utf-8", newline="") as handle:
        if path.suffix.lower() == ".csv":
            names = list(dict.fromkeys(name for row in rows for name in row))
            writer = csv.DictWriter(handle, fieldnames=names)
            writer.writeheader()
            writer.writerows(rows)
        else:
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _anonymize(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth.guard import Caller
    from app.datasets import service
    from app.errors import GatewayError
    from app.progress import bar
    from app.runtime import opened

    rows = _read(args.input)
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
    _write(args.out, result.rows)
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
