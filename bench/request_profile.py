"""What one audited write and one audited read cost inside the gateway: statements sent to the
database per request (counted by a SQLAlchemy hook on every engine) and, with `--profile`, where
the CPU goes (py-spy over many requests in one process, on the request threads too), for writes
without free text, masked reads and writes with a 300-character note.

The gateway runs in this process behind uvicorn on loopback (as `pgw serve` runs it), on a fresh
PostgreSQL database by default; the job worker is off, so every statement counted is a request's.

Usage: python bench/request_profile.py [--database postgres|sqlite] [--requests 300]
                                       [--profile DIR] [--show]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.audit_scaling import plain_customer  # noqa: E402
from bench.gateway_load import PGW, customer, fresh_database  # noqa: E402
from tests.server import free_port  # noqa: E402


class Statements:
    """Every statement any engine sends, with the thread that sent it."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.lock = threading.Lock()

    def __call__(self, _conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        with self.lock:
            self.seen.append(" ".join(statement.split())[:110])

    def take(self) -> list[str]:
        with self.lock:
            seen, self.seen = self.seen, []
        return seen


def _serve(env: dict[str, str], port: int) -> tuple[Any, threading.Thread]:
    import uvicorn

    os.environ.update(env)
    from app.main import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port,
                                           log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    return server, thread


def _count(client: httpx.Client, statements: Statements, label: str, send: Any,
           show: bool) -> int:
    counts = []
    for i in range(5):
        statements.take()
        send(i)
        seen = statements.take()
        counts.append(len(seen))
    if show:
        print(f"-- {label}: the last request's statements")
        for statement in seen:
            print("   ", statement)
        for statement, n in Counter(seen).most_common():
            if n > 1:
                print(f"    {n}x {statement}")
    print(f"{label}: {counts[-1]} statements per request (runs: {counts})")
    return counts[-1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", default="postgres", choices=["postgres", "sqlite"])
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--profile", type=Path, help="write pyinstrument reports here")
    parser.add_argument("--show", action="store_true", help="print the statements")
    args = parser.parse_args()
    from sqlalchemy import Engine, event

    with tempfile.TemporaryDirectory() as tmp:
        url = fresh_database(args.database, Path(tmp), "profile")
        env = {"PGW_ENV": "dev", "PGW_DATA_DIR": str(Path(tmp) / "data"),
               "PGW_DATABASE_URL": url, "PGW_POLICY_DIR": str(ROOT / "policies"),
               "PGW_WORKER_IN_SERVE": "false", "PGW_RATE_LIMITS": "default=0,pii=0,datasets=0",
               "PGW_LOG_LEVEL": "warning"}
        subprocess.run([PGW, "migrate"], env={**os.environ, **env}, check=True,
                       capture_output=True)
        statements = Statements()
        event.listen(Engine, "before_cursor_execute", statements)
        port = free_port()
        server, thread = _serve(env, port)
        token = subprocess.run(
            [PGW, "token", "--sub", "bench", "--scope", "records:write records:read",
             "--roles", "support_agent"], env={**os.environ, **env}, check=True,
            capture_output=True, text=True).stdout.strip()
        ids: list[str] = []
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            def write(i: int) -> None:
                response = client.post("/v1/records", json=plain_customer(len(ids) + 10**6))
                response.raise_for_status()
                ids.append(response.json()["record_id"])

            def read(i: int) -> None:
                client.get(f"/v1/records/{ids[i % len(ids)]}",
                           params={"purpose": "customer_support"}).raise_for_status()

            for i in range(20):  # warm-up: first-use caches, pools
                write(i)
                read(i)
            _count(client, statements, "write of a new subject, no free text", write, args.show)
            _count(client, statements, "masked read", read, args.show)
        server.should_exit = True
        thread.join()
        if args.profile:
            _profile(args.profile, env, args.requests, ids)


def _profile(directory: Path, env: dict[str, str], requests: int, ids: list[str]) -> None:
    """py-spy on a one-process `pgw serve` while 4 clients send writes, then reads, then writes
    with a 300-character note of their own (what batching scans across requests acts on): CPU
    per request from /proc, and the functions on the sampled stacks of threads holding the GIL
    (Python running, not waiting; the request threads included), by their share."""
    from bench.audit_scaling import cpu_seconds
    from tests.server import wait_until_up

    directory.mkdir(parents=True, exist_ok=True)
    port = free_port()
    server = subprocess.Popen([PGW, "serve", "--port", str(port), "--workers", "1",
                               "--no-migrate"], env={**os.environ, **env},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_up(server, url + "/readyz", timeout=180)
        token = subprocess.run(
            [PGW, "token", "--sub", "bench", "--scope", "records:write records:read",
             "--roles", "support_agent"], env={**os.environ, **env}, check=True,
            capture_output=True, text=True).stdout.strip()
        client = httpx.Client(base_url=url, timeout=30,
                              headers={"Authorization": f"Bearer {token}"},
                              limits=httpx.Limits(max_connections=8))
        counter = iter(range(2 * 10**6, 3 * 10**6))

        def write(_i: int) -> None:
            response = client.post("/v1/records", json=plain_customer(next(counter)))
            response.raise_for_status()
            ids.append(response.json()["record_id"])

        def read(i: int) -> None:
            client.get(f"/v1/records/{ids[i % len(ids)]}",
                       params={"purpose": "customer_support"}).raise_for_status()

        def write_noted(_i: int) -> None:  # a note of its own (bench/gateway_load.py)
            client.post("/v1/records", json=customer(next(counter))).raise_for_status()

        for i in range(20):
            write(i)
            read(i)
            write_noted(i)
        for label, send in (("write", write), ("read", read),
                            ("write with a 300-character note", write_noted)):
            for attempt in range(3):  # without py-spy: its sampling costs the server CPU too
                before = cpu_seconds(server.pid)
                with ThreadPoolExecutor(4) as pool:
                    list(pool.map(send, range(requests)))
                cpu = (cpu_seconds(server.pid) - before) / requests
                print(f"{label}: {cpu * 1000:.2f} ms server CPU per request (run {attempt + 1})")
            raw = directory / f"{label}.collapsed"
            spy = subprocess.Popen([str(Path(sys.executable).with_name("py-spy")), "record",
                                    "--pid", str(server.pid), "--rate", "400", "--format",
                                    "raw", "--output", str(raw), "--nonblocking", "--gil"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1.5)  # py-spy attaches
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(send, range(requests)))
            spy.send_signal(2)
            spy.wait(timeout=60)
            report = top_functions(raw.read_text())
            (directory / f"{label}.txt").write_text(report)
            print(report)
        client.close()
    finally:
        server.terminate()
        server.wait(timeout=30)


def top_functions(collapsed: str, limit: int = 30) -> str:
    """Each function's share of the samples: on the stack at all (inclusive) and at its top
    (self), from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        total += n
        frames = [_short(frame) for frame in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += n
        own[frames[-1]] += n
    lines = [f"{total} samples; inclusive share, self share, function"]
    for frame, n in inclusive.most_common(limit):
        lines.append(f"{n / total:6.1%} {own[frame] / total:6.1%}  {frame}")
    lines.append("top by self share:")
    for frame, n in own.most_common(limit):
        lines.append(f"{inclusive[frame] / total:6.1%} {n / total:6.1%}  {frame}")
    return "\n".join(lines) + "\n"


def _short(frame: str) -> str:
    # "function (path/to/file.py:123)" without the line, the path from site-packages or app/
    name, _, where = frame.partition(" (")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "/wt-perf/", "/lib/python3.11/"):
        if marker in path:
            path = path.split(marker, 1)[1]
    return f"{name} ({path})"


if __name__ == "__main__":
    main()
