"""What the audit sequencer costs per entry: CPU of the sequencing process and of PostgreSQL,
per entry integrated, for each source tree given, in the same run.

Each tree runs in a process of its own (this script, `PYTHONPATH` set to the tree) on a fresh
migrated PostgreSQL database: `--entries` queued read entries are inserted at once (by SQL, as
the gateway's reads queue them), then `app.audit.sequencer.step` integrates them in batches of
`--batch` until none is left; three rounds, the first counting as warm-up. Compare the tree
before a change with the tree after it: `--trees old=/tmp/old,new=.`

Usage: python bench/sequencer_cpu.py [--entries 10000] [--batch 200] [--trees name=path,...]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

_QUEUE = """
INSERT INTO audit_pending (ts, actor, roles, action, purpose, subject_id, resource, outcome,
                           details, request_id, policy_version)
SELECT now(), 'bench', '["support_agent"]', 'record.read', 'customer_support', 'subject-' || g,
       'record:' || md5(g::text), 'allowed',
       '{"record_type": "customer_profile", "requested": ["email", "name", "phone"],
         "returned": ["email", "name", "phone"], "masked": ["email", "phone"]}',
       md5(g::text), 'bench'
FROM generate_series(1, %s) AS g
"""


def _measure(entries: int, batch: int) -> list[dict[str, float]]:
    """In the tree's own process: rounds of queue, then integrate, with their CPU."""
    import psycopg

    from app.audit import sequencer
    from app.config import load_settings
    from app.runtime import opened
    from bench.audit_scaling import postgres_cpu

    plain = os.environ["PGW_DATABASE_URL"].replace("postgresql+psycopg://", "postgresql://")
    rounds = []
    with opened(load_settings()) as runtime:
        sequencer.step(runtime)
        for _ in range(3):
            with psycopg.connect(plain, autocommit=True) as connection:
                connection.execute(_QUEUE, (entries,))
            cpu, wall, database = time.process_time(), time.perf_counter(), postgres_cpu()
            done = 0
            while True:
                result = sequencer.step(runtime, limit=batch)
                if result is None or result.added == 0:
                    break
                done += result.added
            rounds.append({"entries": done, "cpu": time.process_time() - cpu,
                           "wall": time.perf_counter() - wall,
                           "database": postgres_cpu() - database})
    return rounds


def _run_tree(name: str, tree: Path, entries: int, batch: int) -> list[dict[str, float]]:
    from bench.gateway_load import PGW, fresh_database

    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database("postgres", Path(tmp), "sequencer")
        env = {**os.environ, "PGW_ENV": "dev", "PGW_DATA_DIR": str(Path(tmp) / "data"),
               "PGW_DATABASE_URL": url, "PGW_POLICY_DIR": str(tree / "policies"),
               "PGW_LOG_LEVEL": "warning", "PYTHONPATH": str(tree)}
        subprocess.run([PGW, "migrate"], env=env, check=True, capture_output=True)
        answer = subprocess.run(
            [sys.executable, str(Path(__file__).resolve()), "--child",  # imports from `tree`
             "--entries", str(entries), "--batch", str(batch)],
            env=env, check=True, capture_output=True, text=True, cwd=tree)
        return list(json.loads(answer.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=200)
    parser.add_argument("--trees", default=f"this={ROOT}")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(_measure(args.entries, args.batch)))
        return
    sys.path.insert(0, str(ROOT))
    print(f"{args.entries} queued entries a round, integrated in batches of {args.batch}; "
          "per entry, rounds 2 and 3 (round 1 warms up)\n")
    print("| tree | sequencer CPU, us | PostgreSQL CPU, us | wall, us | entries/s |")
    print("|---|---:|---:|---:|---:|")
    for spec in args.trees.split(","):
        name, _, path = spec.partition("=")
        for one in _run_tree(name, Path(path).resolve(), args.entries, args.batch)[1:]:
            n = one["entries"]
            print(f"| {name} | {one['cpu'] / n * 1e6:.0f} | {one['database'] / n * 1e6:.0f} | "
                  f"{one['wall'] / n * 1e6:.0f} | {n / one['wall']:,.0f} |", flush=True)


if __name__ == "__main__":
    main()
