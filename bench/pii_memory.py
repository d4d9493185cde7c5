"""What scanning costs in memory over time: spaCy's vocabulary with and without memory zones.

Each mode runs in a fresh process: the engine as the gateway builds it scans `--notes` customer
notes of about 300 characters, each with identifiers no other note has (an e-mail address, an
order number, a ticket), as a gateway sees them. Printed every quarter: the strings spaCy's
vocabulary holds beyond the model's own, the process's resident memory beyond what it held after
loading, and the CPU milliseconds a note. `zones` is the gateway's code; `unbounded` is the code
path before it (every word kept), measured in the same run.

Usage: python bench/pii_memory.py [--notes 20000] [--rounds 2]
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import random
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

FIRST = "Maria John Wei Priya Olga Ahmed Lucas Fatima Kenji Sofia".split()
LAST = "Gonzalez Smith Zhang Patel Petrova Khan Martin Haddad Sato Rossi".split()
VERBS = "called wrote emailed complained asked".split()
STREETS = "Elm Oak Baker High Station Church Mill Park".split()
CITIES = "Springfield Leeds Austin Perth Lyon Osaka Pune Cork".split()


def note(pick: random.Random) -> str:
    return (f"Customer {pick.choice(FIRST)} {pick.choice(LAST)} {pick.choice(VERBS)} about order "
            f"{pick.randrange(10**6)}; moved to {pick.randrange(200)} {pick.choice(STREETS)} "
            f"Street, {pick.choice(CITIES)} and asked us to update the phone to "
            f"415-555-{pick.randrange(10**4):04d} and email m{pick.randrange(10**6)}@example.com. "
            f"Ticket T-{pick.randrange(10**7)}.")


def _rss_mb() -> float:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def measure(mode: str, notes: int) -> None:
    """One mode, in this process: a line a quarter."""
    from app.pii import vocabulary

    if mode == "unbounded":  # the code path before memory zones: nothing forgotten
        vocabulary.Vocabulary.__init__ = lambda self, nlp, **_: setattr(self, "closed", 0)
        vocabulary.Vocabulary.held = lambda self, deadline=None: contextlib.nullcontext()
        vocabulary.Vocabulary.count = lambda self, texts: None
    from app.pii.engine import PiiEngine

    engine = PiiEngine()
    strings = engine.nlp_engine.nlp["en"].vocab.strings
    engine.analyze("Warm-up: John Smith called from London on 415-555-0132.", language="en")
    pick = random.Random(5)
    gc.collect()
    base_strings, base_rss, started = len(strings), _rss_mb(), time.process_time()
    for done in range(1, notes + 1):
        engine.analyze(note(pick), language="en")
        if done % (notes // 4) == 0:
            gc.collect()
            print(f"{mode:9} {done:>7,} notes  strings +{len(strings) - base_strings:>7,}  "
                  f"RSS +{_rss_mb() - base_rss:6.1f} MB  "
                  f"{(time.process_time() - started) / done * 1000:5.2f} ms CPU a note  "
                  f"zones closed {engine.vocabulary.closed}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notes", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--mode", choices=("zones", "unbounded"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.mode:
        measure(args.mode, args.notes)
        return
    env = {**os.environ, "PGW_PII_PARALLEL_MIN_CHARS": "0", "PGW_LOG_LEVEL": "WARNING"}
    for _ in range(args.rounds):
        for mode in ("unbounded", "zones"):  # alternating, each in a fresh process
            subprocess.run([sys.executable, __file__, "--mode", mode, "--notes", str(args.notes)],
                           check=True, env=env)


if __name__ == "__main__":
    main()
