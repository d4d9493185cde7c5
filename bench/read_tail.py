"""The audited read's latency at a fixed rate, old code against new in the same run.

For each round and each code tree (`--trees name=path,...`, put first on the server's
PYTHONPATH), a fresh PostgreSQL database and `pgw serve --workers 2`: 200 writes to warm up, then
open-loop reads with masking at `--rate` for `--seconds` (bench/gateway_load.py's load generator
in its own process). With `--gc DIR` every process logs its cyclic collections
(bench/gc_probe) and the report adds the collections over 5 ms in the servers during the reads.
With `--stages DIR` every server process logs each read's stages (bench/stage_probe) and the
report adds, stage by stage, the wall time (p50, p99) and the CPU time of stages on one thread.

Usage: python bench/read_tail.py [--rounds 3] [--seconds 15] [--rate 50]
                                 [--trees old=/work/main,new=.] [--gc DIR] [--stages DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import gateway_load as load  # noqa: E402

PROBE = ROOT / "bench" / "gc_probe"
STAGE_PROBE = ROOT / "bench" / "stage_probe"


def _reads(target: load.Target, rate: float, seconds: float, results: Any) -> None:
    async def run() -> tuple[list[float], int, float, int]:
        _, ids, _ = await load.open_loop(target, "write", 2 * rate, 200, 10**6, [])
        await load.drain(target, ids)
        await asyncio.sleep(1)
        started, started_ns = time.time(), time.perf_counter_ns()
        latencies, _, errors = await load.open_loop(target, "read", rate, int(rate * seconds),
                                                    0, ids)
        return latencies, errors, started, started_ns

    results.put(asyncio.run(run()))


def _pauses(directory: Path, since: float) -> list[str]:
    found = []
    for log in directory.glob("gc-*.log"):
        for line in log.read_text().splitlines():
            when, generation, ms, _ = line.split()
            if float(when) >= since and float(ms) > 5:
                found.append(f"gen{generation} {float(ms):.0f} ms")
    return found


def _stages(directory: Path, since_ns: int) -> str:
    """Per stage of a read (bench/stage_probe): wall p50 / p99 and, where both marks are on one
    thread, CPU p50, in ms, over the reads sent from `since_ns` on (perf_counter is the
    system's monotonic clock, one for every process)."""
    reads = [marks for log in directory.glob("stages-*.jsonl")
             for marks in map(json.loads, log.read_text().splitlines()) if marks[0][1] >= since_ns]
    if not reads:
        return "\n  no reads were probed"
    usual = statistics.mode(tuple(name for name, _, _ in marks) for marks in reads)
    reads = [marks for marks in reads if tuple(name for name, _, _ in marks) == usual]
    lines = [f"\n  stages of {len(reads)} reads (wall p50 / p99, CPU p50 when on one thread; ms):"]
    for i in range(1, len(usual)):
        wall = [(marks[i][1] - marks[i - 1][1]) / 1e6 for marks in reads]
        cpu = [(marks[i][2] - marks[i - 1][2]) / 1e6 for marks in reads]
        one_thread = all(0 <= c <= w + 1 for c, w in zip(cpu, wall, strict=True))
        lines.append(f"  {usual[i - 1]:>9} -> {usual[i]:<9} {_pct(wall, 0.5):6.2f} / "
                     f"{_pct(wall, 0.99):6.2f}" +
                     (f"   CPU {_pct(cpu, 0.5):5.2f}" if one_thread else ""))
    whole = [(marks[-1][1] - marks[0][1]) / 1e6 for marks in reads]
    lines.append(f"  {'whole':>9}    {'':<9} {_pct(whole, 0.5):6.2f} / {_pct(whole, 0.99):6.2f}")
    return "\n".join(lines)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def one(path: str, rate: float, seconds: float, tmp: Path, gc_dir: Path | None,
        stage_dir: Path | None = None) -> str:
    saved = dict(os.environ)
    os.environ["PYTHONPATH"] = ":".join(
        [path] + ([str(PROBE)] if gc_dir is not None else []) +
        ([str(STAGE_PROBE)] if stage_dir is not None else []))
    if gc_dir is not None:
        gc_dir.mkdir(parents=True, exist_ok=True)
        os.environ["GC_PROBE_DIR"] = str(gc_dir)
    if stage_dir is not None:
        stage_dir.mkdir(parents=True, exist_ok=True)
        os.environ["STAGE_PROBE_DIR"] = str(stage_dir)
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
        latencies, errors, started, started_ns = results.get(timeout=600)
        process.join()
    finally:
        server.stop()
    report = (f"p50 {load.pct(latencies, 0.5):5.1f} p90 {load.pct(latencies, 0.9):5.1f} "
              f"p99 {load.pct(latencies, 0.99):5.1f} max {max(latencies) * 1000:6.1f} ms, "
              f"{len(latencies)} reads, {errors} errors")
    if gc_dir is not None:
        pauses = _pauses(gc_dir, started)
        report += f"; collections over 5 ms: {len(pauses)} ({', '.join(pauses[:8])})"
    if stage_dir is not None:
        report += _stages(stage_dir, started_ns)
    return report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--trees", default=f"old=/work/main,new={ROOT}")
    parser.add_argument("--gc", type=Path, default=None)
    parser.add_argument("--stages", type=Path, default=None)
    args = parser.parse_args()
    if args.gc is not None and args.stages is not None:  # one sitecustomize module is imported
        parser.error("--gc and --stages each need a run of their own")
    trees = dict(item.split("=", 1) for item in args.trees.split(","))
    tmp = Path(tempfile.mkdtemp(prefix="pgw-read-tail-"))
    try:
        for round_ in range(1, args.rounds + 1):
            for name, path in trees.items():
                gc_dir = None if args.gc is None else args.gc / f"{name}-{round_}"
                stage_dir = None if args.stages is None else args.stages / f"{name}-{round_}"
                print(f"round {round_} {name}: "
                      f"{one(path, args.rate, args.seconds, tmp, gc_dir, stage_dir)}",
                      flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
