"""The gateway under load, against the framework floor, on SQLite and PostgreSQL, 1 and 2 workers.

For each database and worker count, two servers are started in turn with uvicorn on loopback:
the gateway (`pgw serve`) and `bench/bare_app.py`, a FastAPI endpoint that stores and returns the
same JSON in the same database with nothing else. A load generator in a separate process sends:

- writes of a 10-field customer record with a 300-character free-text note, open loop at a
  fixed rate (latency counted from each request's planned send time, so a stall is not hidden);
- reads with masking (a support agent reading for customer support), open loop at the same rate;
- then a closed loop of 8 concurrent clients for writes and for reads: throughput.

The gateway runs as production runs it: `pgw serve --workers N` and, beside it, one `pgw worker`
(the job worker and the audit log's sequencer), measured once it has reported alive;
`--worker-in-serve` runs those in a thread of each serving process instead, as development
does. The audit log's backlog is read from the database every second during the gateway's run
(most entries waiting, longest integration lag); a run whose worker failed, or whose entries
are not all integrated soon after, fails.

Targets (2-core machine): at 50 writes/s, p99 under 50 ms on PostgreSQL; reads p99 under 10 ms.

Usage: python bench/gateway_load.py [--rate 50] [--seconds 20] [--databases sqlite,postgres]
                                    [--workers 1,2] [--worker-in-serve]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import queue
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.rawhttp import Connection, HttpError  # noqa: E402
from tests.server import free_port, wait_until_up  # noqa: E402

PGW = str(Path(sys.executable).with_name("pgw"))
UVICORN = str(Path(sys.executable).with_name("uvicorn"))
PG_ADMIN_URL = os.environ.get("PGW_BENCH_POSTGRES_URL",
                              "postgresql+psycopg://postgres@127.0.0.1:5432/test")
PG_DATABASE = "pgw_bench"
_FIRST = ("Mary", "John", "Ahmed", "Olga", "Juan", "Sarah", "Tom", "Priya", "Lena", "Wei")
_LAST = ("Jones", "Smith", "Khan", "Petrova", "Perez", "Brown", "Garcia", "Patel", "Novak", "Li")


def note(i: int) -> str:
    """A support note of about 300 characters with a name, a mobile number, an e-mail address
    and a street of its own: no two subjects' notes alike, as in a real CRM (a scan reads a
    text it has seen in the same batch once, so one note for every write would flatter any
    batching)."""
    r = random.Random(i)
    return (f"{r.choice(_FIRST)} {r.choice(_LAST)} rang about a late parcel, order {100000 + i}, "
            f"and asked us to call back on 139{r.randrange(10**8):08d} or write to "
            f"customer{i}@example.com; prefers calls after {r.randrange(1, 9)}pm. Delivery to "
            f"the side door of {r.randrange(1, 200)} {r.choice(_LAST)} Street, the front gate is "
            "locked. Asked whether the refund for the broken kettle has been processed yet.")


CONCURRENCY = 8
TIMEOUT = 10.0


def customer(i: int) -> dict[str, Any]:
    """A 10-field customer_profile record, different for every subject."""
    return {"subject_id": f"bench-{i}", "purpose": "account_management",
            "record_type": "customer_profile",
            "data": {"name": random.choice(["张伟", "王芳", "Li Na", "John Smith"]),
                     "email": f"customer{i}@example.com", "phone": f"1381234{i % 10000:04d}",
                     "cn_resident_id": "11010519491231002X", "birth_date": "1988-04-12",
                     "address": "上海市浦东新区世纪大道100号", "gender": "female",
                     "city": "上海", "postcode": "200120", "notes": note(i)}}


# -- servers ------------------------------------------------------------------------------------

def _pg_url(database: str) -> str:
    return PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + database


def fresh_database(kind: str, tmp: Path, name: str) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tmp / (name + '.db')}"
    return fresh_postgres(PG_DATABASE)


def fresh_postgres(name: str) -> str:
    """An empty PostgreSQL database of this name (dropped first if it exists): its URL."""
    import psycopg

    plain = PG_ADMIN_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    return _pg_url(name)


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str
    token: str | None
    worker: subprocess.Popen[bytes] | None = None  # `pgw worker`, when run apart
    worker_log: Path | None = None  # its stderr

    def stop(self) -> None:
        """Both processes asked to stop first, then waited for (killed if they do not)."""
        running = [p for p in (self.process, self.worker) if p is not None]
        for process in running:
            process.terminate()
        for process in running:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def check_worker(self) -> None:
        """`pgw worker` still running (its job loop and sequencer log and retry their errors
        rather than exit, so its log is checked too)."""
        if self.worker is None:
            return
        log = self.worker_log.read_text(errors="replace") if self.worker_log else ""
        if self.worker.poll() is not None or "Traceback" in log or '"ERROR"' in log:
            raise RuntimeError(f"pgw worker failed; its log ({self.worker_log}):\n{log[-2000:]}")


def start_gateway(database_url: str, workers: int, tmp: Path, *,
                  worker_apart: bool = True) -> Server:
    """`pgw serve` on a port of its own, and beside it `pgw worker` (the job worker and the
    audit log's sequencer) as production runs it, once it has reported alive; `worker_apart=
    False` runs them in a thread of each serving process instead, as `pgw serve` does in
    development."""
    data_dir = tmp / f"data-{time.monotonic_ns()}"
    # one bench caller makes every request: its per-caller rate limit (200/s a process by
    # default) is lifted, else the closed loops measure the limit, not the gateway
    env = {**os.environ, "PGW_ENV": "dev", "PGW_DATA_DIR": str(data_dir),
           "PGW_DATABASE_URL": database_url, "PGW_POLICY_DIR": str(ROOT / "policies"),
           "PGW_RATE_LIMITS": "default=0,pii=0,datasets=0",
           "PGW_WORKER_IN_SERVE": "false" if worker_apart else "true"}
    port = free_port()
    process = subprocess.Popen([PGW, "serve", "--port", str(port), "--workers", str(workers)],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    server = Server(process, f"http://127.0.0.1:{port}", None)
    try:
        wait_until_up(process, server.url + "/readyz", timeout=180)
        if worker_apart:  # started once `pgw serve` has migrated and made the data directory
            server.worker_log = tmp / f"worker-{port}.log"
            with server.worker_log.open("wb") as log:
                # the GC probe of bench/read_tail.py counts the serving processes only
                server.worker = subprocess.Popen(
                    [PGW, "worker"], env={k: v for k, v in env.items() if k != "GC_PROBE_DIR"},
                    stdout=subprocess.DEVNULL, stderr=log)
            _await_worker(server)
        server.token = subprocess.run(
            [PGW, "token", "--sub", "bench", "--scope", "records:write records:read",
             "--roles", "support_agent"], env=env, check=True, capture_output=True,
            text=True).stdout.strip()
    except BaseException:
        server.stop()
        raise
    return server


def _await_worker(server: Server, timeout: float = 60) -> None:
    """Until the worker's first heartbeat shows on /metrics (it beats once it has started and
    reached the database), so its start-up is not counted in a measurement."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        server.check_worker()
        if float(gauges(server.url).get("pgw_workers_alive", 0)) >= 1:
            return
        time.sleep(0.2)
    raise RuntimeError(f"pgw worker did not report alive within {timeout:g} s")


def gauges(url: str) -> dict[str, str]:
    """The gateway's gauges without labels, from its public /metrics."""
    import urllib.request

    with urllib.request.urlopen(url + "/metrics", timeout=10) as answer:  # noqa: S310 - loopback
        text = answer.read().decode()
    return {line.split()[0]: line.split()[-1] for line in text.splitlines()
            if line.startswith("pgw_") and "{" not in line.split()[0]}


class AuditWatch:
    """The audit log's backlog sampled from the database while a load runs (not through the
    gateway's /metrics, whose queries would run in a serving process and so weigh on the
    latencies measured): the most entries waiting and the longest integration lag seen, and
    the state at the end (all integrated, or not)."""

    def __init__(self, database_url: str):
        from sqlalchemy import create_engine
        from sqlalchemy.pool import NullPool

        self.engine = create_engine(database_url, poolclass=NullPool)
        self.pending, self.lag, self.samples = 0, 0.0, 0

    def _read(self) -> tuple[int, float, int]:
        from sqlalchemy.orm import Session

        from app.audit import tree

        with Session(self.engine) as session:
            waiting, lag = tree.integration_lag(session)
            return waiting, lag, tree.tree_size(session)

    def sample(self) -> None:
        waiting, lag, _ = self._read()
        self.pending, self.lag = max(self.pending, waiting), max(self.lag, lag)
        self.samples += 1

    def finish(self, timeout: float = 30) -> str:
        """Wait until nothing is left to integrate; what was seen, as one line."""
        deadline = time.monotonic() + timeout
        try:
            while True:
                waiting, _, size = self._read()
                if waiting == 0:
                    break
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{waiting} audit entries still waiting after the run")
                time.sleep(0.2)
        finally:
            self.engine.dispose()
        return (f"at most {self.pending} entries waiting and {self.lag:.2f} s of integration "
                f"lag in {self.samples} samples a second apart; at the end none waiting, tree "
                f"size {size}")


def start_bare(database_url: str, workers: int) -> Server:
    env = {**os.environ, "BARE_DATABASE_URL": database_url}
    subprocess.run([sys.executable, "-c", "from bench.bare_app import create_table; "
                    "create_table()"], env=env, check=True, cwd=ROOT)
    port = free_port()
    process = subprocess.Popen([UVICORN, "bench.bare_app:app", "--port", str(port), "--workers",
                                str(workers), "--log-level", "warning", "--no-access-log"],
                               env=env, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_until_up(process, url + "/docs", timeout=180)
    return Server(process, url, None)


# -- load (runs in its own process) ------------------------------------------------------------

@dataclass
class Target:
    url: str
    token: str | None
    gateway: bool
    audited: bool = False  # the bare endpoints that also write an audit row (bench/bare_app.py)

    @property
    def items(self) -> str:
        return "/audited/items" if self.audited else "/items"

    def write(self, i: int) -> tuple[str, dict[str, Any]]:
        return ("/v1/records", customer(i)) if self.gateway else (self.items, customer(i))

    def read_path(self, item_id: str) -> str:
        if self.gateway:
            return f"/v1/records/{item_id}?purpose=customer_support"
        return f"{self.items}/{item_id}"


async def _send(pool: Pool, target: Target, op: str, i: int, ids: list[str]) -> str | None:
    if op == "write":
        path, body = target.write(i)
        status, answer = await pool.request("POST", path, body)
        if status != 201:
            raise HttpError(f"write failed: {status} {answer[:300]!r}")
        result = json.loads(answer)
        return str(result.get("record_id") or result.get("id"))
    status, answer = await pool.request("GET", target.read_path(ids[i % len(ids)]))
    if status != 200:
        raise HttpError(f"read failed: {status} {answer[:300]!r}")
    return None


class Pool:
    """Keep-alive connections (bench/rawhttp.py: httpx's own CPU per request would be counted
    against the server on this 2-core machine), one per request in flight."""

    def __init__(self, target: Target):
        url = urlsplit(target.url)
        self.address = (url.hostname or "127.0.0.1", url.port or 80)
        self.headers = {"Authorization": f"Bearer {target.token}"} if target.token else {}
        self.idle: list[Connection] = []

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        connection = self.idle.pop() if self.idle else Connection(*self.address, self.headers)
        try:
            answer = await asyncio.wait_for(connection.request(method, path, body), TIMEOUT)
        except BaseException:
            await connection.close()
            raise
        self.idle.append(connection)
        return answer

    async def close(self) -> None:
        for connection in self.idle:
            await connection.close()


FAILURES = (OSError, asyncio.IncompleteReadError, asyncio.TimeoutError, HttpError)


async def open_loop(target: Target, op: str, rate: float, count: int, first: int,
                    ids: list[str]) -> tuple[list[float], list[str], int]:
    """`count` requests at `rate`/s; latency from each request's planned start. A request
    that fails or times out counts as an error, and as the timeout in the latencies."""
    latencies: list[float] = []
    made: list[str] = []
    errors = 0
    pool = Pool(target)
    start = time.perf_counter() + 0.2

    async def one(n: int) -> None:
        nonlocal errors
        planned = start + n / rate
        await asyncio.sleep(max(0.0, planned - time.perf_counter()))
        try:
            made_id = await _send(pool, target, op, first + n, ids)
        except FAILURES as exc:
            if not errors:
                print(f"first error ({op}): {type(exc).__name__}: {exc}", file=sys.stderr)
            errors += 1
            made_id = None
        latencies.append(time.perf_counter() - planned)
        if made_id:
            made.append(made_id)

    try:
        await asyncio.gather(*(one(n) for n in range(count)))
    finally:
        await pool.close()
    return latencies, made, errors


async def closed_loop(target: Target, op: str, seconds: float, first: int,
                      ids: list[str]) -> tuple[float, list[float]]:
    latencies: list[float] = []
    counter = iter(range(first, first + 10**9))
    pool = Pool(target)
    end = time.perf_counter() + seconds

    async def worker() -> None:
        while time.perf_counter() < end:
            began = time.perf_counter()
            try:
                await _send(pool, target, op, next(counter), ids)
            except FAILURES:
                continue
            latencies.append(time.perf_counter() - began)

    began = time.perf_counter()
    try:
        await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    finally:
        elapsed = time.perf_counter() - began
        await pool.close()
    return len(latencies) / elapsed, latencies


async def drain(target: Target, ids: list[str]) -> None:
    """Wait until the server has worked off what an overloaded phase left queued, so that one
    phase's backlog does not count against the next."""
    pool = Pool(target)
    deadline = time.perf_counter() + 300
    try:
        while time.perf_counter() < deadline:
            began = time.perf_counter()
            try:
                await _send(pool, target, "read", 0, ids)
            except FAILURES:
                continue
            if time.perf_counter() - began < 0.5:
                return
    finally:
        await pool.close()


def _load(target: Target, rate: float, seconds: float, results: Any) -> None:
    count = int(rate * seconds)
    async def run() -> dict[str, Any]:
        # warm-up: caches, connection pools, the first keys
        _, ids, _ = await open_loop(target, "write", rate, max(20, count // 10), 10**6, [])
        write_lat, made, write_errors = await open_loop(target, "write", rate, count, 0, [])
        ids += made
        await drain(target, ids)
        read_lat, _, read_errors = await open_loop(target, "read", rate, count, 0, ids)
        await drain(target, ids)
        write_rps, _ = await closed_loop(target, "write", seconds / 2, 2 * 10**6, ids)
        await drain(target, ids)
        read_rps, _ = await closed_loop(target, "read", seconds / 2, 0, ids)
        return {"write": write_lat, "read": read_lat, "write_rps": write_rps,
                "read_rps": read_rps, "errors": write_errors + read_errors}

    results.put(asyncio.run(run()))


def measure(target: Target, rate: float, seconds: float,
            watch: AuditWatch | None = None) -> dict[str, Any]:
    """Run the load generator in a separate process, so it does not share the server's GIL;
    `watch` samples the audit log's gauges meanwhile."""
    context = multiprocessing.get_context("spawn")
    results = context.Queue()
    process = context.Process(target=_load, args=(target, rate, seconds, results))
    process.start()
    while True:
        try:
            if watch is not None:
                watch.sample()
            result: dict[str, Any] = results.get(timeout=1)
            break
        except queue.Empty:
            if not process.is_alive():
                raise RuntimeError("the load generator died (see its traceback)") from None
    process.join()
    return result


# -- report ------------------------------------------------------------------------------------

def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def summary(values: list[float]) -> str:
    return (f"p50 {pct(values, .50):5.1f} / p95 {pct(values, .95):5.1f} / "
            f"p99 {pct(values, .99):5.1f} ms")


def verdict(kind: str, workers: int, rows: dict[str, dict[str, Any]],
            rate: float) -> list[str]:
    gw, bare = rows["gateway"], rows["bare"]

    def times(op: str) -> float:
        return statistics.median(gw[op]) / statistics.median(bare[op])

    lines = [f"- {kind}, {workers} worker(s): gateway/bare: write p50 {times('write'):.1f}x, "
             f"read p50 {times('read'):.1f}x, write throughput "
             f"{bare['write_rps'] / gw['write_rps']:.1f}x lower"]
    write_p99, read_p99 = pct(gw["write"], .99), pct(gw["read"], .99)
    if kind == "postgres":
        lines.append(f"  target write p99 < 50 ms at {rate:.0f}/s: {write_p99:.1f} ms "
                     f"{'met' if write_p99 < 50 else 'MISSED'}")
    lines.append(f"  target read p99 < 10 ms: {read_p99:.1f} ms "
                 f"{'met' if read_p99 < 10 else 'MISSED'}")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--databases", default="sqlite,postgres")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--worker-in-serve", action="store_true",
                        help="run the job worker and the audit sequencer in a thread of each "
                             "serving process (development's default) instead of as a "
                             "`pgw worker` process of their own (production's)")
    args = parser.parse_args()
    verdicts: list[str] = []
    audits: list[str] = []
    print(f"open loop at {args.rate:.0f}/s for {args.seconds:.0f} s per operation; closed loop "
          f"with {CONCURRENCY} clients for {args.seconds / 2:.0f} s; latencies in ms\n")
    print("| database | workers | server | writes at rate | reads at rate | writes/s | "
          "reads/s | errors |")
    print("|---|---|---|---|---|---|---|---|")
    tmp = Path(tempfile.mkdtemp(prefix="pgw-bench-"))
    try:
        for kind in args.databases.split(","):
            for workers in (int(w) for w in args.workers.split(",")):
                rows = {}
                for name in ("gateway", "bare"):
                    url = fresh_database(kind, tmp, f"{name}-{workers}")
                    server = (start_gateway(url, workers, tmp,
                                            worker_apart=not args.worker_in_serve)
                              if name == "gateway" else start_bare(url, workers))
                    try:
                        watch = AuditWatch(url) if name == "gateway" else None
                        rows[name] = measure(Target(server.url, server.token,
                                                    name == "gateway"), args.rate,
                                             args.seconds, watch)
                        if watch is not None:
                            server.check_worker()
                            audits.append(f"- {kind}, {workers} worker(s), audit log: "
                                          f"{watch.finish()}")
                    finally:
                        server.stop()
                    row = rows[name]
                    print(f"| {kind} | {workers} | {name} | {summary(row['write'])} | "
                          f"{summary(row['read'])} | {row['write_rps']:.0f} | "
                          f"{row['read_rps']:.0f} | {row['errors']} |", flush=True)
                verdicts += verdict(kind, workers, rows, args.rate)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print("\n".join(verdicts + audits))


if __name__ == "__main__":
    main()
