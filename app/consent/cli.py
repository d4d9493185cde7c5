"""`pgw consent init-key|receipt-key`: the key that signs consent receipts."""

from __future__ import annotations

import argparse
from typing import Any

from app.config import Settings
from app.keys import files
from app.keys.signing import generate_pem, load_signer


def _init_key(args: argparse.Namespace, settings: Settings) -> int:
    created = files.write_new(settings.receipt_key_file, generate_pem())
    print(f"{'created' if created else 'kept existing'} receipt signing key "  # noqa: T201
          f"{settings.receipt_key_file}")
    return 0


def _receipt_key(args: argparse.Namespace, settings: Settings) -> int:
    signer = load_signer(settings.receipt_key_file, create=settings.is_dev)
    print(signer.public_pem(), end="")  # noqa: T201
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser("consent", help="consent receipts")
    sub = parser.add_subparsers(dest="consent_command", required=True)
    sub.add_parser("init-key", help="create the receipt signing key if it is missing")\
        .set_defaults(handler=_init_key)
    sub.add_parser("receipt-key", help="print the public key that verifies receipts (PEM)")\
        .set_defaults(handler=_receipt_key)
