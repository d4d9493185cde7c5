"""What the record lanes (app/capacity.py: Lane) cost the event loop per request, with fewer
and with more concurrent requests than threads, for each source tree given, beside the plain
framework way of bounding threads (anyio's to_thread with a CapacityLimiter, as Starlette runs a
`def` endpoint) in the same run.

Each request runs a stand-in for a request's database work on a lane thread (300 µs asleep,
no CPU); with `--watch` each also watches for its client leaving while it waits, as the gateway's
do. The figure is the process's CPU per request (event loop and threads), the mean of `--rounds`
rounds, the trees taking turns; and requests per second.

Usage: python bench/lane_cost.py [--trees old=/tmp/old,new=.] [--clients 1,8,32,64]
                                 [--threads 8] [--requests 6000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

_MEASURE = """
import json, sys, time
import anyio, anyio.to_thread
kind, clients, threads, requests = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])

def work():
    time.sleep(0.0003)

async def main():
    if kind == "anyio":
        limiter = anyio.CapacityLimiter(threads)
        async def one():
            await anyio.to_thread.run_sync(work, limiter=limiter)
    else:
        from app.capacity import Lane
        lane = Lane("bench", threads=threads, queue=100000, wait_seconds=60)
        never = anyio.Event()
        async def gone():
            await never.wait()
        async def one():
            await lane.run(work, until_gone=gone)
    done = 0
    async def client():
        nonlocal done
        while done < requests:
            done += 1
            await one()
    for _ in range(200):
        await one()
    cpu, wall = time.process_time(), time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(clients):
            group.start_soon(client)
    print(json.dumps({"cpu": (time.process_time() - cpu) / done,
                      "rate": done / (time.perf_counter() - wall)}))

anyio.run(main, backend_options={"use_uvloop": True})
"""


def measure(tree: Path | None, clients: int, threads: int, requests: int) -> dict[str, Any]:
    # run in the tree: `python -c` looks in the working directory first, PYTHONPATH after it
    env = {**os.environ, "PYTHONPATH": str(tree or ROOT)}
    out = subprocess.run([sys.executable, "-c", _MEASURE, "lane" if tree else "anyio",
                          str(clients), str(threads), str(requests)], env=env, check=True,
                         capture_output=True, text=True, cwd=tree or ROOT).stdout
    result: dict[str, Any] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trees", default=f"this={ROOT}",
                        help="name=path of each source tree, comma-separated")
    parser.add_argument("--clients", default="1,8,32,64")
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--requests", type=int, default=6000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees: dict[str, Path | None] = {"anyio limiter": None}
    for item in args.trees.split(","):
        name, _, path = item.partition("=")
        trees[name] = Path(path).resolve()
    print(f"| concurrent requests ({args.threads} threads) | "
          + " | ".join(f"{name}: µs CPU / request, requests/s" for name in trees) + " |")
    print("|---:|" + "---:|" * len(trees))
    for clients in [int(c) for c in args.clients.split(",")]:
        seen: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for _ in range(args.rounds):
            for name, tree in trees.items():
                seen[name].append(measure(tree, clients, args.threads, args.requests))
        cells = []
        for runs in seen.values():
            cpu = sum(r["cpu"] for r in runs) / len(runs)
            rate = sum(r["rate"] for r in runs) / len(runs)
            cells.append(f"{cpu * 1e6:.0f}, {rate:,.0f}")
        print(f"| {clients} | " + " | ".join(cells) + " |", flush=True)
        time.sleep(0.1)


if __name__ == "__main__":
    main()
