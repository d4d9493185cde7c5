"""`pgw keys ...`: status, rotation with progress, retirement, and due destructions."""

from __future__ import annotations

import argparse
import json
from typing import Any

from app.auth.guard import Caller
from app.config import Settings
from app.keys import rotation, shred
from app.keys.status import key_status
from app.progress import bar
from app.runtime import opened

CALLER = Caller.system("cli")


def _status(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings, need_keys=True) as runtime, runtime.transaction() as session:
        assert runtime.keyring is not None  # noqa: S101 - need_keys
        print(json.dumps(key_status(session, runtime.keyring), indent=2))  # noqa: T201
    return 0


def _rotate_kek(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings, need_keys=True) as runtime:
        assert runtime.keyring is not None  # noqa: S101 - need_keys
        done = rotation.run_kek_rotation(runtime.session_factory, runtime.keyring, caller=CALLER,
                                         batch_size=args.batch_size, progress=bar)
    print(f"\nKEK version {done.target_version}: {done.processed} keys rewrapped")  # noqa: T201
    return 0


def _rotate_dek(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings, need_keys=True) as runtime:
        keyring = runtime.keyring
        assert keyring is not None  # noqa: S101 - need_keys
        if args.subject:
            with runtime.transaction() as session:
                version = rotation.rotate_subject_dek(session, keyring, caller=CALLER,
                                                      subject_id=args.subject)
            print(f"subject {args.subject}: new key version {version}")  # noqa: T201
            return 0
        # the same resumable run a `keys.dek_rotation` job makes, here in the foreground
        count = rotation.run_dek_rotation(runtime.session_factory, keyring, caller=CALLER,
                                          progress=bar)
    print(f"\n{count} subjects have new data keys")  # noqa: T201
    return 0


def _retire(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings, need_keys=True) as runtime, runtime.transaction() as session:
        rotation.retire_kek_versions(session, caller=CALLER, below=args.below)
    print(f"KEK versions below {args.below} are no longer accepted")  # noqa: T201
    return 0


def _destroy_due(args: argparse.Namespace, settings: Settings) -> int:
    with opened(settings, need_keys=True) as runtime, runtime.transaction() as session:
        assert runtime.keyring is not None  # noqa: S101 - need_keys
        destroyed = shred.destroy_due(session, runtime.keyring, caller=CALLER)
    print(f"destroyed the keys of {len(destroyed)} subjects")  # noqa: T201
    return 0


def register(commands: Any) -> None:
    parser = commands.add_parser("keys", help="key-encryption and data keys")
    sub = parser.add_subparsers(dest="keys_command", required=True)
    sub.add_parser("status", help="versions, counts, rotations").set_defaults(handler=_status)
    kek = sub.add_parser("rotate-kek", help="new KEK version; rewrap every DEK (resumable)")
    kek.add_argument("--batch-size", type=int, default=500)
    kek.set_defaults(handler=_rotate_kek)
    dek = sub.add_parser("rotate-dek", help="new data keys for one subject or all")
    which = dek.add_mutually_exclusive_group(required=True)
    which.add_argument("--subject")
    which.add_argument("--all", action="store_true")
    dek.set_defaults(handler=_rotate_dek)
    retire = sub.add_parser("retire-kek", help="stop accepting KEK versions below N")
    retire.add_argument("--below", type=int, required=True)
    retire.set_defaults(handler=_retire)
    sub.add_parser("destroy-due", help="destroy keys whose grace period has ended")\
        .set_defaults(handler=_destroy_due)
