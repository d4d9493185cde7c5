"""`pgw audit ...`: verify online or offline, export, checkpoint, and manage the signing key."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.audit import export, log_check, sequencer, verifier, witness
from app.audit import service as audit
from app.audit.verifier import Verification
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
    where = "" if result.first_bad_seq is None else \
        f"first bad sequence number {result.first_bad_seq}: "
    print(f"TAMPERED: {where}{result.reason}")  # noqa: T201
    return 1


def _verify(args: argparse.Namespace, settings: Settings) -> int:
    problem = verifier.misused_option("export", checkpoints=len(args.checkpoint),
                                      against=args.against is not None,
                                      witnesses=bool(args.witness))
    if args.file is not None and args.public_key is None:
        problem = "--file needs --public-key"
    if args.file is not None and args.progress:
        problem = "--progress is for the live log; an export is read without one"
    if problem is not None:
        print(f"pgw: {problem}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        if args.file is not None:
            return verifier.run(argparse.Namespace(
                what="export", file=args.file, public_key=args.public_key,
                checkpoint=args.checkpoint, against=args.against, witness=args.witness))
        with opened(settings) as runtime:
            return _verify_live(args, runtime)
    except (verifier.ExportFormatError, verifier.NoteError) as exc:
        print(f"TAMPERED: {exc}")  # noqa: T201
        return 1
    except (ValueError, OSError) as exc:
        print(f"FAILED: {exc}")  # noqa: T201
        return 1


def _verify_live(args: argparse.Namespace, runtime: Runtime) -> int:
    """The database's log, held against the checkpoints and the older export the auditor kept,
    as an export would be."""
    public_key = runtime.audit_signer.public_key if runtime.audit_signer is not None else None
    if args.public_key is not None:
        public_key = load_public_key(args.public_key.read_bytes())
    kept: list[verifier.Note] = []
    if public_key is not None:
        kept = [verifier.read_kept(path, public_key, args.witness) for path in args.checkpoint]
    elif args.checkpoint or args.against:
        print("pgw: --checkpoint and --against need the log's public key (--public-key; the "  # noqa: T201
              f"gateway's own is unusable: {'; '.join(runtime.key_problems)})", file=sys.stderr)
        return 2
    with runtime.transaction() as session:
        audit.catch_up(session)
    with runtime.read_session_factory() as session:
        result = log_check.verify_log(session, signer=runtime.audit_signer, public_key=public_key,
                                  roots_at=[note.size for note in kept],
                                  progress=_progress(args))
        result = verifier.hold_to_kept(result, kept)
        if args.against is not None and public_key is not None:
            result = verifier.against_older(result, args.against, audit.iter_entries(session),
                                            public_key)
    return _report(result)


def _progress(args: argparse.Namespace) -> Callable[[int, int], None] | None:
    from app import progress

    return progress.reporter(True) if progress.wanted(args.progress) else None


def _check_proof(args: argparse.Namespace, settings: Settings) -> int:
    problem = verifier.misused_option(args.what, checkpoints=len(args.checkpoint),
                                      against=args.against is not None,
                                      witnesses=bool(args.witness))
    if problem is not None:
        print(f"pgw: {problem}", file=sys.stderr)  # noqa: T201
        return 2
    try:
        return verifier.run(args)
    except (ValueError, KeyError, TypeError, OSError) as exc:
        print(f"FAILED: {exc}")  # noqa: T201
        return 1


def _verifier_script(args: argparse.Namespace, settings: Settings) -> int:
    sys.stdout.write(Path(verifier.__file__).read_text(encoding="utf-8"))
    return 0


def _sequence(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings) as runtime:
        if args.once:
            result = sequencer.step(runtime)
            print("another sequencer holds the lock" if result is None  # noqa: T201
                  else f"tree size {result.size} (+{result.added})")
            return 0
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            sequencer.run(runtime, stop=stop)
        except KeyboardInterrupt:
            stop.set()
    return 0


def _witness(args: argparse.Namespace, settings: Settings) -> int:
    token = (args.token_file.read_text(encoding="utf-8").strip() if args.token_file
             else os.environ.get("PGW_WITNESS_TOKEN", ""))
    if not token:
        print("pgw: the witness needs a token with audit:read (--token-file or "  # noqa: T201
              "PGW_WITNESS_TOKEN)", file=sys.stderr)
        return 2
    state = witness.open_witness(
        name=args.name, key_file=args.key, state_dir=args.state, url=args.url, token=token,
        log_key=load_public_key(args.log_key.read_bytes()))
    return witness.run(state, once=args.once, interval=args.interval)


def _signer_or_exit(runtime: Runtime) -> Signer:
    if runtime.audit_signer is None:
        raise SystemExit(f"pgw: {'; '.join(runtime.key_problems)}")
    return runtime.audit_signer


def _export(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings) as runtime:
        signer = _signer_or_exit(runtime)
        with runtime.transaction() as session:
            size, head = export.prepare_export(session, caller=CALLER)
        # The export holds subject ids: it is personal data, so it is written owner-only.
        fd = os.open(args.out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, files.SECRET_FILE_MODE)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            show = _progress(args)
            if show is not None:
                show(0, size)
            out.writelines(export.export_chunks(runtime.read_session_factory, size=size,
                                               head_hash=head, key_id=signer.key_id,
                                               progress=show))
    print(f"exported {size} entries to {args.out}")  # noqa: T201
    return 0


def _checkpoint(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings) as runtime, runtime.transaction() as session:
        _signer_or_exit(runtime)
        try:
            checkpoint = audit.create_checkpoint(session)
        except audit.CheckpointUnavailable as exc:
            raise SystemExit(f"pgw: {exc} (PGW_SEQUENCER_DATABASE_URL is set)") from None
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
    verify.add_argument("--public-key", type=Path,
                        help="the log's PEM public key (needed with --file; live, instead of "
                             "the gateway's own)")
    verify.add_argument("--checkpoint", type=Path, action="append", default=[],
                        help="a checkpoint (signed note) you kept from earlier: the log must "
                             "extend it")
    verify.add_argument("--against", type=Path,
                        help="an older export: the log must begin with its entries (names the "
                             "first entry that differs)")
    verify.add_argument("--witness", action="append", default=[], metavar="NAME=PEM",
                        help="a witness that must have co-signed each kept checkpoint "
                             "(needs --checkpoint)")
    verify.set_defaults(handler=_verify)

    proof = sub.add_parser("check-proof", help="check an inclusion or consistency proof "
                           "fetched from /v1/audit/entries/{seq}/proof or /v1/audit/consistency")
    verifier.add_arguments(proof)
    proof.set_defaults(handler=_check_proof)

    sub.add_parser("verifier-script", help="print the single-file offline verifier (Python)")\
        .set_defaults(handler=_verifier_script)

    seq = sub.add_parser("sequence", help="integrate entries into the Merkle tree and sign "
                         "checkpoints (every `pgw worker` does this too)")
    seq.add_argument("--once", action="store_true", help="one batch, then exit")
    seq.set_defaults(handler=_sequence)

    wit = sub.add_parser("witness", help="co-sign checkpoints from outside the database, "
                         "refusing a rewritten or truncated log")
    wit.add_argument("--url", required=True, help="the gateway's base URL")
    wit.add_argument("--log-key", type=Path, required=True,
                     help="the log's public key (`pgw audit public-key`)")
    wit.add_argument("--key", type=Path, required=True,
                     help="the witness's own Ed25519 key (PEM; created if missing)")
    wit.add_argument("--state", type=Path, required=True, help="the witness's own directory")
    wit.add_argument("--name", default="pgw-witness", help="the witness's name in notes")
    wit.add_argument("--token-file", type=Path, help="a bearer token with audit:read")
    wit.add_argument("--interval", type=float, default=60.0, help="seconds between checks")
    wit.add_argument("--once", action="store_true", help="check once and exit (1: refused)")
    wit.set_defaults(handler=_witness)

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
