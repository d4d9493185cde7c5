"""`pgw`: the command line. Each domain registers its own subcommands."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from collections.abc import Callable, Sequence

from app import logs
from app.config import ConfigError, Settings, load_settings

Handler = Callable[[argparse.Namespace, Settings], int]


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth.tokens import load_verifier
    from app.db import upgrade
    from app.keys.signing import load_signer
    from app.ops import serving, setup
    from app.ops.metrics import MULTIPROC_ENV
    from app.runtime import private_data_dir

    if not settings.is_dev:
        found = setup.problems(settings, serving=True)
        if found:
            raise ConfigError(*found)
    private_data_dir(settings.data_dir)
    if settings.is_dev:
        # Made once here, before workers start, so they do not race to create them.
        load_verifier(settings, create_dev_secret=True)
        load_signer(settings.audit_key_file, create=True)
    if args.migrate if args.migrate is not None else settings.is_dev:
        upgrade(settings.migration_url, service_role=settings.service_role,
                sequencer_role=settings.sequencer_role)
    if args.workers > 1 and not os.environ.get(MULTIPROC_ENV):
        metrics_dir = settings.data_dir / "metrics"
        shutil.rmtree(metrics_dir, ignore_errors=True)
        metrics_dir.mkdir(parents=True)
        os.environ[MULTIPROC_ENV] = str(metrics_dir.resolve())
    serving.serve("app.main:app", host=args.host, port=args.port, workers=args.workers,
                  log_config=None, server_header=False, proxy_headers=args.proxy_headers)
    return 0


def _migrate(args: argparse.Namespace, settings: Settings) -> int:
    from app.db import upgrade

    upgrade(settings.migration_url, args.revision, service_role=settings.service_role,
            sequencer_role=settings.sequencer_role)
    print(f"database at {args.revision}"  # noqa: T201
          + (f"; role {settings.service_role} granted what the service needs"
             if settings.service_role else ""))
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    from app.auth.tokens import issue_dev_token

    if not settings.is_dev:
        print("pgw token: development tokens are refused when PGW_ENV=prod; "  # noqa: T201
              "get a token from your identity provider", file=sys.stderr)
        return 2
    roles = [r for part in args.roles for r in part.split(",") if r]
    print(issue_dev_token(settings, sub=args.sub, scopes=args.scope.split(),  # noqa: T201
                          roles=roles, ttl=args.ttl))
    return 0


def build_parser() -> argparse.ArgumentParser:
    from app.access import cli as access_cli
    from app.audit import cli as audit_cli
    from app.consent import cli as consent_cli
    from app.console import cli as console_cli
    from app.datasets import cli as datasets_cli
    from app.dsr import cli as dsr_cli
    from app.jobs import cli as jobs_cli
    from app.keys import cli as keys_cli
    from app.ops import cli as ops_cli
    from app.pii import cli as pii_cli
    from app.policy import cli as policy_cli
    from app.records import cli as records_cli
    from app.retention import cli as retention_cli
    from app.webhooks import cli as webhooks_cli

    parser = argparse.ArgumentParser(prog="pgw", description="Privacy-compliance gateway")
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the HTTP service under uvicorn")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--migrate", action=argparse.BooleanOptionalAction, default=None,
                       help="upgrade the database first (default: yes in dev, no in prod)")
    serve.add_argument("--proxy-headers", action="store_true",
                       help="trust X-Forwarded-* from the proxy in front")
    serve.set_defaults(handler=_serve)

    migrate = commands.add_parser("migrate", help="bring the database to the latest migration")
    migrate.add_argument("revision", nargs="?", default="head")
    migrate.set_defaults(handler=_migrate)

    token = commands.add_parser("token", help="print a development token (dev only)")
    token.add_argument("--sub", required=True)
    token.add_argument("--scope", default="", help='space-separated, e.g. "audit:read"')
    token.add_argument("--roles", action="append", default=[], help="comma-separated roles")
    token.add_argument("--ttl", type=int, default=3600, help="seconds")
    token.set_defaults(handler=_token)

    audit_cli.register(commands)
    pii_cli.register(commands)
    keys_cli.register(commands)
    policy_cli.register(commands)
    consent_cli.register(commands)
    dsr_cli.register(commands)
    access_cli.register(commands)
    console_cli.register(commands)
    webhooks_cli.register(commands)
    jobs_cli.register(commands)
    retention_cli.register(commands)
    datasets_cli.register(commands)
    records_cli.register(commands)
    ops_cli.register(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    from pydantic import ValidationError

    args = build_parser().parse_args(argv)
    try:
        try:
            settings = load_settings()
        except ValidationError as exc:
            from app.ops.setup import settings_problems

            raise ConfigError(*settings_problems(exc)) from None
        logs.configure(settings.log_level)
        handler: Handler = args.handler
        return handler(args, settings)
    except ConfigError as exc:
        if len(exc.problems) == 1:
            print(f"pgw: configuration error: {exc}", file=sys.stderr)  # noqa: T201
        else:
            print(f"pgw: {len(exc.problems)} configuration problems:", file=sys.stderr)  # noqa: T201
            for problem in exc.problems:
                print(f"  - {problem}", file=sys.stderr)  # noqa: T201
        return int(getattr(args, "config_error_exit", 2))


if __name__ == "__main__":
    sys.exit(main())
