"""Anonymising 100,000 generated customer rows with 4 quasi-identifiers (birth date, gender,
postcode, address), for k = 5 and k = 10 (suppression up to 5%): seconds and information loss
of our engine, and in the same run the plain use of a library on the same data and the same
hierarchies: anjana's `k_anonymity`.

anjana cannot be installed beside the service (it pins typing_extensions==4.15.0, pydantic
needs >=4.16), so it runs in a virtual environment of its own: `--baseline-python` names its
interpreter (made with `python3 -m venv V && V/bin/pip install anjana==1.2.3`).

Information loss: the loss metric (LM) on the data, the same arithmetic for both engines: a
cell generalised to a value covering g of its column's D distinct values loses (g-1)/(D-1), a
suppressed record 1 per column; averaged over records and columns. The k reached is counted
independently of both engines.

Usage: python bench/anonymize_bench.py [--rows 100000] [--baseline-python PATH]
       [--baseline-timeout 900]
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from app.datasets.anonymize import anonymize  # noqa: E402
from app.datasets.hierarchies import generalise, top  # noqa: E402
from app.datasets.lattice import Column  # noqa: E402
from app.policy.loader import load_policy  # noqa: E402

POLICY = Path(__file__).resolve().parent.parent / "policies"
PLACES = [("上海市", d) for d in ("浦东新区", "徐汇区", "静安区", "闵行区")] + \
    [("广东省广州市", d) for d in ("天河区", "越秀区", "海珠区")] + \
    [("北京市", d) for d in ("朝阳区", "海淀区", "东城区")] + \
    [("浙江省杭州市", d) for d in ("西湖区", "上城区")]

BASELINE = r'''
import json, sys, time
import pandas as pd
from anjana.anonymity import k_anonymity
src, k, qis = sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3])
frame = pd.read_csv(src, dtype=str, keep_default_na=False)
hierarchies = {}
for qi in qis:
    levels = sorted(int(c.split("@")[1]) for c in frame.columns if c.startswith(qi + "@"))
    table = frame[[f"{qi}@{l}" for l in levels]].drop_duplicates(f"{qi}@0")
    hierarchies[qi] = {l: table[f"{qi}@{l}"].reset_index(drop=True) for l in levels}
data = frame[["id"] + qis]
start = time.perf_counter()
out = k_anonymity(data, ["id"], qis, k, 5, hierarchies)
seconds = time.perf_counter() - start
levels = {}
for qi in qis:
    values = set(out[qi])
    levels[qi] = next((l for l, col in hierarchies[qi].items() if values <= set(col)), None)
sizes = out.groupby(qis).size() if len(out) else []
print(json.dumps({"seconds": seconds, "released": len(out), "levels": levels,
                  "k": int(min(sizes)) if len(out) else None,
                  # with suppression anjana renumbers the rows and keeps the old numbers in
                  # an "index" column
                  "kept": [int(i) for i in (out["index"] if "index" in out else out.index)]}))
'''


def rows(n: int, seed: int = 11) -> list[dict[str, Any]]:
    rnd = random.Random(seed)
    out = []
    for i in range(n):
        city, district = rnd.choice(PLACES)
        out.append({"id": f"c{i}", "birth_date": f"{rnd.randint(1950, 2006)}-"
                    f"{rnd.randint(1, 12):02d}-{rnd.randint(1, 28):02d}",
                    "gender": rnd.choice("MF"), "postcode": f"{rnd.randint(100000, 999999)}",
                    "address": f"{city}{district}幸福路{rnd.randint(1, 999)}号"})
    return out


def independent_k(data: list[dict[str, Any]], qis: list[str]) -> int:
    return min(Counter(tuple(row[q] for q in qis) for row in data).values())


def loss(data: list[dict[str, Any]], kinds: dict[str, str], levels: dict[str, int | None],
         kept: list[int]) -> float | None:
    if any(level is None for level in levels.values()):
        return None
    keep = np.zeros(len(data), dtype=bool)
    keep[kept] = True
    per_column = [(Column.of(kind, [row[q] for row in data]).cell_loss[levels[q] or 0][keep]
                   .sum() + (~keep).sum()) / len(data) for q, kind in kinds.items()]
    return round(float(sum(per_column) / len(per_column)), 4)


def baseline(python: str, data: list[dict[str, Any]], kinds: dict[str, str], k: int,
             timeout: float) -> dict[str, Any]:
    qis = list(kinds)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.csv"
        columns = ["id"] + [f"{q}@{lvl}" for q in qis for lvl in range(top(kinds[q]) + 1)] + qis
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(columns)
            for row in data:
                writer.writerow([row["id"]] + [generalise(kinds[q], row[q], lvl) for q in qis
                                               for lvl in range(top(kinds[q]) + 1)]
                                + [row[q] for q in qis])
        try:
            done = subprocess.run([python, "-c", BASELINE, str(path), str(k), json.dumps(qis)],
                                  capture_output=True, text=True, timeout=timeout, check=True)
        except subprocess.TimeoutExpired:
            return {"seconds": None, "note": f"did not finish within {timeout:.0f} s"}
        except subprocess.CalledProcessError as exc:
            return {"seconds": None, "note": f"failed: {exc.stderr.strip()[-300:]}"}
        return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--baseline-python")
    parser.add_argument("--baseline-timeout", type=float, default=900)
    args = parser.parse_args()
    spec = load_policy(POLICY).body.record_types["customer_profile"].dataset
    assert spec is not None  # noqa: S101 - the default policy declares it
    kinds = dict(spec.quasi_identifiers)
    data = rows(args.rows)
    print(f"{args.rows} rows, quasi-identifiers {', '.join(kinds)}, suppression <= 5%")  # noqa: T201
    for k in (5, 10):
        start = time.perf_counter()
        release = anonymize(data, spec, k=k, l=1, max_suppression=0.05)
        seconds = time.perf_counter() - start
        reached = independent_k(release.rows, list(kinds))
        print(f"k={k:<3} ours:    {seconds:7.1f} s  levels {release.levels}  "  # noqa: T201
              f"loss {release.report['information_loss_mean']}  suppressed "
              f"{release.report['suppressed']}  k reached {reached}")
        if args.baseline_python:
            found = baseline(args.baseline_python, data, kinds, k, args.baseline_timeout)
            if found.get("seconds") is None:
                print(f"k={k:<3} anjana:  {found['note']}")  # noqa: T201
                continue
            print(f"k={k:<3} anjana:  {found['seconds']:7.1f} s  levels {found['levels']}  "  # noqa: T201
                  f"loss {loss(data, kinds, found['levels'], found['kept'])}  suppressed "
                  f"{args.rows - found['released']}  k reached {found['k']}")


if __name__ == "__main__":
    main()
