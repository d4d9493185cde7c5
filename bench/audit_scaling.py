"""Audited reads and writes against 1, 2 and 4 gateway processes with 1, 8, 32 and 64 clients,
on PostgreSQL: does throughput grow with concurrency now that writers share no audit lock?

Each write stores a customer record without free text (so the PII model is not what is
measured); each read is a masked read for customer support. Both write an audit entry in their
transaction. Every cell runs a closed loop for `--seconds` against a fresh server; it prints
requests per second, p50 and p99 latency, and the servers' CPU-seconds per request, with the
bare FastAPI endpoint (bench/bare_app.py: same JSON, same database, nothing else) as the floor,
and the same endpoint adding an audit row in its transaction (what no audited request avoids).
The gateway runs as production does: `pgw serve` and, beside it, `pgw worker` (the job worker and
the audit log's sequencer), whose CPU counts in the gateway's CPU-seconds per request. Each
server's CPU is counted from before the warm-up until (for the gateway) every audit entry of the
cell is integrated, and divided by all the requests sent, the warm-up's included. The PII scan
helpers (children of the serving processes) are not counted: these records carry no free text.

Usage: python bench/audit_scaling.py [--seconds 8] [--clients 1,8,32,64] [--processes 1,2,4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.gateway_load import (  # noqa: E402
    AuditWatch,
    Server,
    Target,
    customer,
    fresh_database,
    pct,
    start_bare,
    start_gateway,
)
from bench.rawhttp import Connection, HttpError  # noqa: E402


def plain_customer(i: int) -> dict[str, Any]:
    record = customer(i)
    record["data"].pop("notes")
    return record


async def _one(connection: Connection, target: Target, op: str, i: int,
               ids: list[str]) -> str | None:
    if op == "write":
        status, body = await connection.request(
            "POST", "/v1/records" if target.gateway else target.items, plain_customer(i))
        if status != 201:
            raise HttpError(f"write: {status} {body[:200]!r}")
        result = json.loads(body)
        return str(result.get("record_id") or result.get("id"))
    status, body = await connection.request("GET", target.read_path(ids[i % len(ids)]))
    if status != 200:
        raise HttpError(f"read: {status} {body[:200]!r}")
    return None


async def _closed(target: Target, op: str, clients: int, seconds: float,
                  ids: list[str]) -> tuple[float, list[float], list[str], int]:
    """`clients` connections, each sending its next request when the last is answered."""
    headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
    url = urlsplit(target.url)
    connections = [Connection(url.hostname or "127.0.0.1", url.port or 80, headers)
                   for _ in range(clients)]
    latencies: list[float] = []
    made: list[str] = []
    errors = 0
    counter = iter(range(10**9))
    end = time.perf_counter() + seconds

    async def loop(connection: Connection) -> None:
        nonlocal errors
        while time.perf_counter() < end:
            began = time.perf_counter()
            try:
                made_id = await _one(connection, target, op, next(counter), ids)
            except (OSError, asyncio.IncompleteReadError, HttpError) as exc:
                if not errors:
                    print(f"first error: {exc}", file=sys.stderr)
                errors += 1
                continue
            latencies.append(time.perf_counter() - began)
            if made_id:
                made.append(made_id)

    began = time.perf_counter()
    try:
        await asyncio.gather(*(loop(c) for c in connections))
    finally:
        elapsed = time.perf_counter() - began
        for connection in connections:
            await connection.close()
    return len(latencies) / elapsed, latencies, made, errors


def _load(target: Target, clients: int, seconds: float, queue: Any) -> None:
    async def run() -> dict[str, Any]:
        _, warm, ids, _ = await _closed(target, "write", 4, 2, [])  # warm-up and ids to read
        began = time.process_time()
        write = await _closed(target, "write", clients, seconds, [])
        read = await _closed(target, "read", clients, seconds, ids + write[2])
        return {"write": write[:2], "read": read[:2], "errors": write[3] + read[3],
                "requests": len(write[1]) + len(read[1]), "warm_up": len(warm),
                "write_n": len(write[1]),
                "client_cpu": time.process_time() - began}

    queue.put(asyncio.run(run()))


def cpu_by_process(pid: int) -> dict[int, float]:
    """User and system CPU seconds of a process and of each of its children (uvicorn's workers)."""
    tick = os.sysconf("SC_CLK_TCK")
    pids = [pid, *(int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split())]
    found = {}
    for one in pids:
        try:
            fields = Path(f"/proc/{one}/stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:
            continue
        found[one] = (int(fields[11]) + int(fields[12])) / tick
    return found


def postgres_cpu() -> float:
    """CPU seconds of every PostgreSQL process on this machine (the server is local)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            name, fields = stat.read_text().split(") ", 1)
        except OSError:
            continue
        if name.endswith("(postgres"):
            values = fields.split()
            total += (int(values[11]) + int(values[12])) / tick
    return total


def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of a process and its children, together."""
    return sum(cpu_by_process(pid).values())


def spread(before: dict[int, float], after: dict[int, float], parent: int) -> str:
    """Each worker's share of the workers' CPU over the run, in percent, largest first."""
    used = sorted((after[p] - before.get(p, 0.0) for p in after if p != parent), reverse=True)
    used = [u for u in used if u >= 0.05]  # not the resource tracker
    total = sum(used)
    return "/".join(f"{100 * u / total:.0f}" for u in used) if len(used) > 1 and total else "-"


def worker_cpu(server: Server) -> float:
    """CPU seconds of the gateway's `pgw worker` (job worker and audit sequencer), if apart."""
    return cpu_seconds(server.worker.pid) if server.worker is not None else 0.0


def measure(server: Server, gateway: bool, clients: int, seconds: float, database_url: str,
            audited: bool = False) -> dict[str, Any]:
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    before = cpu_by_process(server.process.pid)
    worker_before = worker_cpu(server)
    database_before = postgres_cpu()
    process = context.Process(target=_load, args=(
        Target(server.url, server.token, gateway, audited), clients, seconds, queue))
    process.start()
    result: dict[str, Any] = queue.get(timeout=seconds * 4 + 120)
    process.join()
    if gateway:  # the sequencing these requests caused is counted too
        server.check_worker()
        AuditWatch(database_url).finish()
    after = cpu_by_process(server.process.pid)
    used = sum(after.values()) - sum(before.values()) + worker_cpu(server) - worker_before
    served = max(1, result["requests"] + result["warm_up"])  # the servers' CPU counts both
    result["cpu_per_request"] = used / served
    result["spread"] = spread(before, after, server.process.pid)
    requests = max(1, result["requests"])
    result["client_cpu_per_request"] = result["client_cpu"] / requests
    result["database_cpu_per_request"] = (postgres_cpu() - database_before) / served
    return result


def machine(result: dict[str, Any]) -> str:
    """What the rest of the machine spent per request: the load generator and PostgreSQL."""
    return (f"{result['client_cpu_per_request'] * 1000:.1f}, "
            f"{result['database_cpu_per_request'] * 1000:.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--clients", default="1,8,32,64")
    parser.add_argument("--processes", default="1,2,4")
    args = parser.parse_args()
    print("| processes | clients | gateway writes/s | p50 / p99 ms | gateway reads/s | "
          "p50 / p99 ms | bare writes/s | bare reads/s | bare + audit row, writes/s | "
          "reads/s | server CPU ms/request: gateway, bare | serving processes' CPU shares, % | "
          "CPU ms/request: load generator, PostgreSQL (gateway; bare) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for processes in [int(p) for p in args.processes.split(",")]:
            for clients in [int(c) for c in args.clients.split(",")]:
                row = {}
                for kind in ("gateway", "bare", "audited"):
                    url = fresh_database("postgres", Path(tmp), "scaling")
                    server = (start_gateway(url, processes, Path(tmp)) if kind == "gateway"
                              else start_bare(url, processes))
                    try:
                        row[kind] = measure(server, kind == "gateway", clients, args.seconds,
                                            url, audited=kind == "audited")
                    finally:
                        server.stop()
                gw, bare, audited = row["gateway"], row["bare"], row["audited"]
                print(f"| {processes} | {clients} | {gw['write'][0]:,.0f} | "
                      f"{pct(gw['write'][1], .5):.0f} / {pct(gw['write'][1], .99):.0f} | "
                      f"{gw['read'][0]:,.0f} | {pct(gw['read'][1], .5):.0f} / "
                      f"{pct(gw['read'][1], .99):.0f} | {bare['write'][0]:,.0f} | "
                      f"{bare['read'][0]:,.0f} | {audited['write'][0]:,.0f} | "
                      f"{audited['read'][0]:,.0f} | {gw['cpu_per_request'] * 1000:.1f}, "
                      f"{bare['cpu_per_request'] * 1000:.1f} | "
                      f"{gw['spread']} | {machine(gw)}; {machine(bare)} |",
                      flush=True)


if __name__ == "__main__":
    main()
