"""Bulk writes against one record per request, on SQLite and PostgreSQL, in the same run.

For each database a fresh gateway is started (`pgw serve`, one uvicorn worker on loopback) and
the same kind of record (10 fields and a 300-character free-text note that is scanned for PII,
from `bench/gateway_load.py`) is written three ways:

- `single`: `POST /v1/records`, one record per request, 4 concurrent clients;
- `batch`: `POST /v1/records/batch`, `--batch-size` records per request, one client;
- `import`: `pgw records import` of a JSON Lines file (in process, no HTTP).

Printed per way: records/s (wall clock) and CPU-seconds per record of the process doing the
work (the server for the HTTP ways, the `pgw` process for import).

Usage: python bench/records_batch.py [--records 500] [--batch-size 500]
                                     [--databases sqlite,postgres] [--database-url URL]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import gateway_load  # noqa: E402
from bench.gateway_load import PGW, customer, fresh_database, start_gateway  # noqa: E402

CLIENTS = 4


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (Linux)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def records(first: int, count: int) -> list[dict[str, Any]]:
    return [customer(i) for i in range(first, first + count)]


def single(server: gateway_load.Server, items: list[dict[str, Any]]) -> None:
    headers = {"authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
        def post(item: dict[str, Any]) -> None:
            response = client.post("/v1/records", json=item)
            if response.status_code != 201:
                raise SystemExit(f"single write failed: {response.status_code} {response.text}")

        with ThreadPoolExecutor(CLIENTS) as pool:
            list(pool.map(post, items))


def batched(server: gateway_load.Server, items: list[dict[str, Any]], size: int) -> None:
    headers = {"authorization": f"Bearer {server.token}"}
    with httpx.Client(base_url=server.url, headers=headers, timeout=600) as client:
        for first in range(0, len(items), size):
            response = client.post("/v1/records/batch", json={"records": items[first:first + size]})
            body = response.json()
            if response.status_code != 200 or body["failed"]:
                raise SystemExit(f"batch failed: {response.status_code} {response.text[:500]}")


def imported(env: dict[str, str], items: list[dict[str, Any]], size: int, tmp: Path) -> float:
    """Runs the import; returns its CPU seconds."""
    source = tmp / f"import-{time.monotonic_ns()}.jsonl"
    source.write_text("".join(json.dumps(i, ensure_ascii=False) + "\n" for i in items),
                      encoding="utf-8")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([PGW, "records", "import", str(source), "--batch-size", str(size), "--json"],
                   env=env, check=True, capture_output=True)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure(url: str, count: int, size: int, tmp: Path) -> dict[str, tuple[float, float]]:
    # the job worker and the sequencer in the serving process, as when the README's figures
    # were taken: the CPU counted below is that one process's
    server = start_gateway(url, 1, tmp, worker_apart=False)
    rows: dict[str, tuple[float, float]] = {}
    try:
        single(server, records(10**6, 20))  # warm up: engine loaded, connections open
        for name, first in (("single", 0), ("batch", count)):
            items = records(first, count)
            cpu, started = process_cpu(server.process.pid), time.perf_counter()
            single(server, items) if name == "single" else batched(server, items, size)
            elapsed = time.perf_counter() - started
            rows[name] = (count / elapsed, (process_cpu(server.process.pid) - cpu) / count)
    finally:
        server.stop()
    env = {**os.environ, "PGW_ENV": "dev", "PGW_DATABASE_URL": url,
           "PGW_DATA_DIR": str(sorted(tmp.glob("data-*"))[-1]),
           "PGW_POLICY_DIR": str(ROOT / "policies"), "PGW_OPERATOR": "bench"}
    started = time.perf_counter()
    cpu = imported(env, records(2 * count, count), size, tmp)
    rows["import"] = (count / (time.perf_counter() - started), cpu / count)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--database-url", help="PostgreSQL admin URL (default: "
                        "$PGW_BENCH_POSTGRES_URL or the local test server)")
    args = parser.parse_args()
    if args.database_url:
        gateway_load.PG_ADMIN_URL = args.database_url
    print(f"{args.records} records per way, batches of {args.batch_size}; "  # noqa: T201
          "CPU of the process doing the writes; the import includes loading the PII engine")
    print(f"{'database':<10} {'way':<8} {'records/s':>10} {'CPU ms/record':>14}")  # noqa: T201
    with tempfile.TemporaryDirectory() as name:
        for kind in args.databases.split(","):
            url = fresh_database(kind, Path(name), "records_batch")
            for way, (rate, cpu) in measure(url, args.records, args.batch_size,
                                            Path(name)).items():
                print(f"{kind:<10} {way:<8} {rate:>10.1f} {cpu * 1000:>14.2f}")  # noqa: T201


if __name__ == "__main__":
    main()
