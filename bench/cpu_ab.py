"""Server CPU per request of two code trees, measured alternately in short batches.

On a shared machine the CPU a request costs drifts by a third within minutes (other tenants,
clock speed), more than most changes to the request path. Here both gateways run at once, each
`pgw serve --workers 1` of its own tree on a fresh PostgreSQL database of its own, and 4 clients
send the same kind of request to one and then the other, batch after batch: each pair of batches
sees the same machine, and the figure is the median of the per-pair ratios.

The two places are not alike: an A/A run (one tree in both) read 0.91-0.93 for writes and 0.97
for reads, the gateway started second always looking cheaper. So each comparison runs twice,
the trees swapped the second time, and the figure given is sqrt(r1 / r2) of the two runs' ratios
(new / old in each), in which the places' bias cancels; the bias itself, sqrt(r1 * r2), is
printed beside it.

Usage: python bench/cpu_ab.py OLD_TREE NEW_TREE [--pairs 8] [--batch 150]
       [--ops write,read,noted]
(a tree is a checkout, e.g. `git worktree add /tmp/old HEAD~1`; the venv is this one's)
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from itertools import count
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.audit_scaling import cpu_seconds, plain_customer  # noqa: E402
from bench.gateway_load import PGW, customer, fresh_postgres  # noqa: E402
from tests.server import free_port, wait_until_up  # noqa: E402


class Gateway:
    def __init__(self, tree: Path, name: str, tmp: Path):
        self.name, self.ids = name, list[str]()
        env = {**os.environ, "PYTHONPATH": str(tree), "PGW_ENV": "dev",
               "PGW_DATA_DIR": str(tmp / name), "PGW_DATABASE_URL": fresh_postgres(name),
               "PGW_POLICY_DIR": str(tree / "policies"), "PGW_WORKER_IN_SERVE": "false",
               "PGW_RATE_LIMITS": "default=0,pii=0,datasets=0", "PGW_LOG_LEVEL": "warning"}
        subprocess.run([PGW, "migrate"], env=env, check=True, capture_output=True)
        token = subprocess.run([PGW, "token", "--sub", "bench", "--scope",
                                "records:write records:read", "--roles", "support_agent"],
                               env=env, check=True, capture_output=True, text=True).stdout.strip()
        port = free_port()
        self.process = subprocess.Popen(
            [PGW, "serve", "--port", str(port), "--workers", "1", "--no-migrate"], env=env,
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_until_up(self.process, f"http://127.0.0.1:{port}/readyz", timeout=180)
        self.client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                                   headers={"Authorization": f"Bearer {token}"},
                                   limits=httpx.Limits(max_connections=8))

    def send(self, op: str, i: int) -> None:
        if op == "read":
            self.client.get(f"/v1/records/{self.ids[i % len(self.ids)]}",
                            params={"purpose": "customer_support"}).raise_for_status()
            return
        body = plain_customer(i) if op == "write" else customer(i)
        response = self.client.post("/v1/records", json=body)
        response.raise_for_status()
        if op == "write":
            self.ids.append(response.json()["record_id"])

    def batch(self, op: str, numbers: list[int]) -> float:
        """Server CPU-seconds per request over this batch."""
        before = cpu_seconds(self.process.pid)
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda i: self.send(op, i), numbers))
        return (cpu_seconds(self.process.pid) - before) / len(numbers)

    def stop(self) -> None:
        self.client.close()
        self.process.terminate()
        self.process.wait(timeout=30)


def run(first: Path, second: Path, ops: list[str], pairs: int, size: int
        ) -> dict[str, tuple[float, float, float]]:
    """Per op: the first tree's and the second's median ms CPU a request, and the median of the
    per-pair ratios second / first."""
    numbers = count(10**6)
    found = {}
    with tempfile.TemporaryDirectory() as tmp:
        gateways = [Gateway(first.resolve(), "pgw_ab_old", Path(tmp)),
                    Gateway(second.resolve(), "pgw_ab_new", Path(tmp))]
        try:
            for gateway in gateways:  # warm-up: first-use caches, pools, records to read
                for op in ("write", "read", "noted"):
                    gateway.batch(op, [next(numbers) for _ in range(40)])
            for op in ops:
                results: dict[str, list[float]] = {"old": [], "new": []}
                for pair in range(pairs):
                    # who goes first alternates, so neither always meets a warmer machine
                    order = gateways if pair % 2 == 0 else gateways[::-1]
                    for gateway in order:
                        batch = [next(numbers) for _ in range(size)]
                        results[gateway.name[7:]].append(gateway.batch(op, batch))
                ratios = sorted(n / o for o, n in zip(results["old"], results["new"],
                                                      strict=True))
                found[op] = (statistics.median(results["old"]) * 1000,
                             statistics.median(results["new"]) * 1000,
                             statistics.median(ratios))
                print(f"  {first.name} then {second.name}, {op}: {found[op][0]:.2f} / "
                      f"{found[op][1]:.2f} ms, ratio {found[op][2]:.3f} ({ratios[0]:.3f}-"
                      f"{ratios[-1]:.3f})", file=sys.stderr, flush=True)
        finally:
            for gateway in gateways:
                gateway.stop()
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    parser.add_argument("--pairs", type=int, default=8)
    parser.add_argument("--batch", type=int, default=150)
    parser.add_argument("--ops", default="write,read,noted")
    args = parser.parse_args()
    ops = args.ops.split(",")
    forward = run(args.old, args.new, ops, args.pairs, args.batch)
    swapped = run(args.new, args.old, ops, args.pairs, args.batch)
    print("| request | old ms CPU (median) | new ms CPU (median) | new / old, places' bias "
          "cancelled | ratio in each place | bias of the second place |")
    print("|---|---:|---:|---:|---|---:|")
    for op in ops:
        old_ms = statistics.mean([forward[op][0], swapped[op][1]])
        new_ms = statistics.mean([forward[op][1], swapped[op][0]])
        r1, r2 = forward[op][2], swapped[op][2]  # new / old, then old / new
        print(f"| {op} | {old_ms:.2f} | {new_ms:.2f} | {math.sqrt(r1 / r2):.3f} | "
              f"{r1:.3f}, {1 / r2:.3f} | {math.sqrt(r1 * r2):.3f} |", flush=True)


if __name__ == "__main__":
    main()
