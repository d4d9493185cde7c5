"""`pgw policy check|schema|report`."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from app.config import Settings
from app.policy.loader import PolicyError, json_schema, load_policy
from app.policy.report import processing_records, to_markdown


def _check(args: argparse.Namespace, settings: Settings) -> int:
    directory = args.dir or settings.policy_dir
    try:
        policy = load_policy(directory)
    except PolicyError as exc:
        print(f"pgw: policy error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    body = policy.body
    print(f"OK: policy {policy.version}: {len(body.purposes)} purposes, "  # noqa: T201
          f"{len(body.record_types)} record types, {len(body.roles)} roles, "
          f"{len(body.jurisdictions)} jurisdictions")
    return 0


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    print(json.dumps(json_schema(), indent=2, ensure_ascii=False))  # noqa: T201
    return 0


def _report(args: argparse.Namespace, settings: Settings) -> int:
    try:
        records = processing_records(load_policy(args.dir or settings.policy_dir))
    except PolicyError as exc:
        print(f"pgw: policy error: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    text = to_markdown(records) if args.format == "md" else \
        json.dumps(records, indent=2, ensure_ascii=False) + "\n"
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        sys.stdout.write(text)
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser("policy", help="check the policy, export its schema, report")
    sub = parser.add_subparsers(dest="policy_command", required=True)
    check = sub.add_parser("check", help="validate a policy directory without starting")
    check.add_argument("dir", nargs="?", type=Path)
    check.set_defaults(handler=_check)
    sub.add_parser("schema", help="JSON Schema of a policy file, for editors")\
        .set_defaults(handler=_schema)
    report = sub.add_parser("report", help="records of processing (GDPR art. 30, PIPL art. 56)")
    report.add_argument("dir", nargs="?", type=Path)
    report.add_argument("--format", choices=("md", "json"), default="md")
    report.add_argument("--out", type=Path)
    report.set_defaults(handler=_report)
