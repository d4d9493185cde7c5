"""The audited read's latency at a fixed rate, old code against new in the same run.

For each round and each code tree (`--trees name=path,...`, put first on the server's
PYTHONPATH), a fresh PostgreSQL database and `pgw serve --workers 2`: 200 writes to warm up, then
open-loop reads with masking at `--rate` for `--seconds` (bench/gateway_load.py's load generator
in its own process). With `--gc DIR` every process logs its cyclic collections
(bench/gc_probe) and the report adds the collections over 5 ms in the servers during the reads.

Usage: python bench/read_tail.py [--rounds 3] [--seconds 15] [--rate 50]
                                 [--trees old=/work/main,new=.] [--gc DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import gateway_load as load  # noqa: E402

PROBE = ROOT / "bench" / "gc_probe"


def _reads(target: load.Target, rate: float, seconds: float, results: Any) -> None:
    async def run() -> tuple[list[float], int, float]:
        _, ids, _ = await load.open_loop(target, "write", 2 * rate, 200, 10**6, [])
        await load.drain(target, ids)
        await asyncio.sleep(1)
        started = time.time()
        latencies, _, errors = await load.open_loop(target, "read", rate, int(rate * seconds),
                                                    0, ids)
        return latencies, errors, started

    results.put(asyncio.run(run()))


def _pauses(directory: Path, since: float) -> list[str]:
    found = []
    for log in directory.glob("gc-*.log"):
        for line in log.read_text().splitlines():
            when, generation, ms, _ = line.split()
            if float(when) >= since and float(ms) > 5:
                found.append(f"gen{generation} {float(ms):.0f} ms")
    return found


def one(path: str, rate: float, seconds: float, tmp: Path, gc_dir: Path | None) -> str:
    saved = dict(os.environ)
    os.environ["PYTHONPATH"] = path if gc_dir is None else f"{path}:{PROBE}"
    if gc_dir is not None:
        gc_dir.mkdir(parents=True, exist_ok=True)
        os.environ["GC_PROBE_DIR"] = str(gc_dir)
    try:
        server = load.start_gateway(load.fresh_database("postgres", tmp, "gw"), 2, tmp)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    try:
        context = multiprocessing.get_context("spawn")
        results = context.Queue()
        process = context.Process(target=_reads, args=(
            load.Target(server.url, server.token, True), rate, seconds, results))
        process.start()
        latencies, errors, started = results.get(timeout=600)
        process.join()
    finally:
        server.stop()
    report = (f"p50 {load.pct(latencies, 0.5):5.1f} p90 {load.pct(latencies, 0.9):5.1f} "
              f"p99 {load.pct(latencies, 0.99):5.1f} max {max(latencies) * 1000:6.1f} ms, "
              f"{len(latencies)} reads, {errors} errors")
    if gc_dir is not None:
        pauses = _pauses(gc_dir, started)
        report += f"; collections over 5 ms: {len(pauses)} ({', '.join(pauses[:8])})"
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--trees", default=f"old=/work/main,new={ROOT}")
    parser.add_argument("--gc", type=Path, default=None)
    args = parser.parse_args()
    trees = dict(item.split("=", 1) for item in args.trees.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="pgw-read-tail-"))
    try:
        for round_ in range(1, args.rounds + 1):
            for name, path in trees.items():
                gc_dir = None if args.gc is None else args.gc / f"{name}-{round_}"
                print(f"round {round_} {name}: "
                      f"{one(path, args.rate, args.seconds, tmp, gc_dir)}", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
