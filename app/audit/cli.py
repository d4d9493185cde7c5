"""`pgw audit ...`: verify online or offline, export, checkpoint, and manage the signing key."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.audit import export
from app.audit import service as audit
from app.audit.chain import Verification
from app.auth.guard import Caller
from app.config import Settings
from app.keys import files
from app.keys.signing import Signer, generate_pem, load_public_key, load_signer
from app.runtime import Runtime, opened

CALLER = Caller.system("cli")


def _report(result: Verification) -> int:
    if result.ok:
        print(f"OK: {result.entries} entries, {result.checkpoints} checkpoints, "  # noqa: T201
              f"head {result.head}")
        return 0
    print(f"TAMPERED: first bad sequence number {result.first_bad_seq}: "  # noqa: T201
          f"{result.reason}")
    return 1


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    if args.file is not None:
        if args.public_key is None:
            print("pgw: --file needs --public-key", file=sys.stderr)  # noqa: T201
            return 2
        public_key = load_public_key(args.public_key.read_bytes())
        with args.file.open(encoding="utf-8") as lines:
            try:
                return _report(export.verify_export(lines, public_key))
            except export.ExportFormatError as exc:
                print(f"TAMPERED: {exc}")  # noqa: T201
                return 1
    with opened(settings) as runtime, runtime.read_session_factory() as session:
        return _report(audit.verify_log(session, signer=runtime.audit_signer,
                                        progress=_progress(args)))


def _progress(args: argparse.Namespace) -> Callable[[int, int], None] | None:
    from app import progress

    return progress.reporter(True) if progress.wanted(args.progress) else None


def _signer_or_exit(runtime: Runtime) -> Signer:
    if runtime.audit_signer is None:
        raise SystemExit(f"pgw: {'; '.join(runtime.key_problems)}")
    return runtime.audit_signer


def _export(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings) as runtime:
        signer = _signer_or_exit(runtime)
        with runtime.transaction() as session:
            size, head = audit.prepare_export(session, caller=CALLER, signer=signer)
        # The export holds subject ids: it is personal data, so it is written owner-only.
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, files.SECRET_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            show = _progress(args)
            if show is not None:
                show(0, size)
            out.writelines(audit.export_chunks(runtime.read_session_factory, size=size,
                                               head_hash=head, key_id=signer.key_id,
                                               progress=show))
    print(f"exported {size} entries to {args.out}")  # noqa: T201
    return 0


def _checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings) as runtime, runtime.transaction() as session:
        checkpoint = audit.create_checkpoint(session, signer=_signer_or_exit(runtime))
        if checkpoint is not None:
            audit.record(session, caller=CALLER, action="audit.checkpoint.created",
                         details={"size": checkpoint.size})
    print("log is empty" if checkpoint is None  # noqa: T201
          else f"checkpoint at size {checkpoint.size}, head {checkpoint.head}")
    return 0


def _public_key(args: argparse.Namespace, settings: Settings) -> int:
    signer = load_signer(settings.audit_key_file, create=settings.is_dev)
    print(signer.public_pem(), end="")  # noqa: T201
    return 0


def _init_key(args: argparse.Namespace, settings: Settings) -> int:
    path = settings.audit_key_file
    created = files.write_new(path, generate_pem())
    print(f"{'created' if created else 'kept existing'} audit signing key {path}")  # noqa: T201
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser("audit", help="the tamper-evident audit log")
    sub = parser.add_subparsers(dest="audit_command", required=True)

    verify = sub.add_parser("verify", help="verify the configured database, or an export file")
    verify.add_argument("--file", type=Path, help="an export made by `pgw audit export`")
    verify.add_argument("--public-key", type=Path, help="PEM public key (with --file)")
    verify.set_defaults(handler=_verify)

    exp = sub.add_parser("export", help="write the log as JSON Lines for offline verification")
    exp.add_argument("--out", type=Path, required=True)
    exp.set_defaults(handler=_export)
    for command in (verify, exp):
        command.add_argument("--progress", action="store_true",
                             help="a progress bar on stderr (default: when it is a terminal)")

    sub.add_parser("checkpoint", help="sign the current head now").set_defaults(
        handler=_checkpoint)
    sub.add_parser("public-key", help="print the checkpoint public key (PEM)").set_defaults(
        handler=_public_key)
    sub.add_parser("init-key", help="create the audit signing key if it is missing")\
        .set_defaults(handler=_init_key)
