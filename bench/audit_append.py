"""The audit append pattern on PostgreSQL, today's against the one before it, with pgbench.

Both patterns are one business transaction writing one business row and its audit entry:

- locked (before issue 18): take the log's advisory lock, read the chain head, insert the entry
  with the next sequence number and its hash, insert the business row, commit. Every writer of
  every process waits for the one before it to commit.
- queued (now): insert the entry into the queue and the business row, commit. A sequencer
  (`app.audit.sequencer`, the code the workers run) numbers, chains and integrates the queued
  entries into the Merkle tree meanwhile; its lag is reported after each run.

Prints transactions per second for 1, 8, 32 and 64 clients, each pattern on a fresh migrated
database, in the same run.

Usage: python bench/audit_append.py [--seconds 10] [--clients 1,8,32,64]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from app.audit import sequencer, tree  # noqa: E402
from app.config import Settings  # noqa: E402
from app.db import upgrade  # noqa: E402
from app.runtime import open_runtime  # noqa: E402

PG_URL = os.environ.get("PGW_BENCH_POSTGRES_URL",
                        "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SETUP = "CREATE TABLE IF NOT EXISTS bench_business (id bigserial PRIMARY KEY, body jsonb);"
ENTRY_COLUMNS = ("ts, actor, roles, action, purpose, subject_id, resource, outcome, details, "
                 "request_id, policy_version")
ENTRY_VALUES = ("now(), 'svc', '[\"agent\"]', 'record.created', 'support', "
                "'subject-' || :client_id, NULL, 'allowed', '{\"fields\": [\"email\"]}', NULL, "
                "'p1'")
LOCKED = f"""
BEGIN;
SELECT pg_advisory_xact_lock(123456789);
SELECT coalesce(max(seq), 0) + 1 AS next, coalesce(max(hash), repeat('0', 64)) AS head
  FROM audit_entries \\gset
INSERT INTO audit_entries (seq, {ENTRY_COLUMNS}, prev_hash, hash)
  VALUES (:next, {ENTRY_VALUES}, ':head', md5(':next') || md5(':head'));
INSERT INTO bench_business (body) VALUES ('{{"email": "x"}}');
COMMIT;
"""  # noqa: S608 - constant text for pgbench
QUEUED = f"""
BEGIN;
INSERT INTO audit_pending ({ENTRY_COLUMNS}) VALUES ({ENTRY_VALUES});
INSERT INTO bench_business (body) VALUES ('{{"email": "x"}}');
COMMIT;
"""  # noqa: S608 - constant text for pgbench


def fresh_database(name: str) -> str:
    admin = make_url(PG_URL).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(PG_URL).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    with psycopg.connect(make_url(url).set(drivername="postgresql")
                         .render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(SETUP)
    return url


def pgbench(url: str, script: str, clients: int, seconds: float) -> float:
    parsed = make_url(url)
    with tempfile.NamedTemporaryFile("w", suffix=".sql", delete=False) as handle:
        handle.write(script)
    try:
        result = subprocess.run(
            ["pgbench", "-n", "-h", parsed.host or "127.0.0.1", "-p", str(parsed.port or 5432),
             "-U", parsed.username or "postgres", "-c", str(clients),
             "-j", str(min(clients, 4)), "-T", str(int(seconds)), "-f", handle.name,
             parsed.database or "test"],
            capture_output=True, text=True, check=True)
    finally:
        os.unlink(handle.name)
    match = re.search(r"tps = ([0-9.]+)", result.stdout)
    if match is None:
        raise RuntimeError(result.stdout + result.stderr)
    return float(match.group(1))


def queued_run(clients: int, seconds: float, tmp: Path) -> tuple[float, int, float]:
    """tps of the queued pattern with a sequencer running; entries left and seconds to drain."""
    url = fresh_database("pgw_bench_queued")
    settings = Settings(env="dev", database_url=url, data_dir=tmp, worker_in_serve=False,
                        policy_dir=ROOT / "policies")
    runtime = open_runtime(settings)
    stop = threading.Event()
    thread = threading.Thread(target=sequencer.run, args=(runtime,), kwargs={"stop": stop})
    thread.start()
    try:
        tps = pgbench(url, QUEUED, clients, seconds)
        with runtime.session_factory() as session:
            waiting, _ = tree.integration_lag(session)
        started = time.monotonic()
        while True:
            with runtime.session_factory() as session:
                if tree.integration_lag(session)[0] == 0:
                    break
            time.sleep(0.05)
        return tps, waiting, time.monotonic() - started
    finally:
        stop.set()
        thread.join()
        runtime.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--clients", default="1,8,32,64")
    args = parser.parse_args()
    clients = [int(c) for c in args.clients.split(",")]
    print("| clients | locked, tx/s | queued, tx/s | ratio | left in the queue at the end | "
          "drained in |")
    print("|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for count in clients:
            locked = pgbench(fresh_database("pgw_bench_locked"), LOCKED, count, args.seconds)
            queued, waiting, drain = queued_run(count, args.seconds, Path(tmp))
            print(f"| {count} | {locked:,.0f} | {queued:,.0f} | {queued / locked:.2f} | "
                  f"{waiting} | {drain:.2f} s |", flush=True)


if __name__ == "__main__":
    main()
