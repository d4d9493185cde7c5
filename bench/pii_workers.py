"""`pgw pii scan --workers N`: documents per second with 1 and 2 worker processes.

Each run's fixed start-up (loading the engine in every worker) is measured on a one-line file
and subtracted, so the figures compare scanning throughput.

Usage: python bench/pii_workers.py [--texts 4000]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pii_eval import english_samples  # noqa: E402

PGW = str(Path(sys.executable).with_name("pgw"))


def run(path: Path, workers: int) -> float:
    started = time.perf_counter()
    subprocess.run([PGW, "pii", "scan", str(path), "--workers", str(workers)], check=False,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--texts", type=int, default=4000)
    args = parser.parse_args()
    samples = english_samples(args.texts, 11)
    with tempfile.TemporaryDirectory() as tmp:
        big, one = Path(tmp) / "big.jsonl", Path(tmp) / "one.jsonl"
        big.write_text("".join(json.dumps({"text": s.text}) + "\n" for s in samples))
        one.write_text(json.dumps({"text": samples[0].text}) + "\n")
        rates = {}
        for workers in (1, 2):
            startup = run(one, workers)
            total = run(big, workers)
            rates[workers] = args.texts / (total - startup)
            print(f"- {workers} worker(s): {rates[workers]:.0f} documents/s "
                  f"(start-up {startup:.1f} s, total {total:.1f} s for {args.texts} texts)")
        print(f"- speed-up with 2 workers: {rates[2] / rates[1]:.2f}x")


if __name__ == "__main__":
    main()
