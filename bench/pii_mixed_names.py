"""English names in real Chinese sentences: how many the engine finds, beside Presidio.

The public Chinese corpora have almost no Latin-script names written as people write them in
mixed text (CLUENER and Weibo NER drop the spaces: `LewisCarroll`), so this puts them there. In
each sentence of a Chinese corpus with a Chinese PERSON (all Chinese characters), the first such
name is replaced by a person's name from an English corpus (CoNLL-2003's PERSON spans, one or
more words), with a space on each side in half of the sentences and glued to the Chinese text in
the other half (`客户John Smith来电`). Everything else, and the other gold spans, stay as the
corpus has them. Neither the sentences nor the names were written here: only their pairing.

Scored: recall of the English names put in (a PERSON overlapping at least half of the shorter
span, and exactly), and PERSON + LOCATION precision over the whole sentences, with the corpus's
neutral labels (bench/pii_corpora.py). Tune on train splits (`--split train`: CLUENER and Weibo
train sentences, CoNLL train names); report the test splits (MSRA, Weibo test, CLUENER dev; CoNLL
test names).

Usage: python bench/pii_mixed_names.py --corpora /work/corpora [--split train] [--limit 1500]
                                       [--engine ours|presidio] [--show 20]
The code under test is the tree on PYTHONPATH (run from another directory to compare trees).
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.append(str(Path(__file__).resolve().parent.parent))  # PYTHONPATH first

from bench.pii_corpora import CORPORA, Document, load  # noqa: E402
from bench.pii_realtext import prf, score  # noqa: E402

HAN_NAME = re.compile(r"[\u4e00-\u9fff]{2,4}")
LATIN_NAME = re.compile(r"[A-Z][A-Za-z.'\-]+(?: [A-Z][A-Za-z.'\-]+)*")
REPORT = {"chinese": [("msra", "test"), ("weibo", "test"), ("cluener", "dev")], "names": "test"}
TUNE = {"chinese": [("cluener", "train"), ("weibo", "train")], "names": "train"}
Prediction = list[tuple[str, int, int]]


def english_names(root: Path, split: str) -> list[str]:
    """Distinct PERSON spans of CoNLL-2003 written as names are (capitalised words)."""
    names = {doc.text[s:e] for doc in load(root, "conll2003", split)
             for k, s, e in doc.spans if k == "PERSON"}
    return sorted(n for n in names if LATIN_NAME.fullmatch(n))


def with_english_name(doc: Document, name: str, spaced: bool
                      ) -> tuple[Document, tuple[int, int]] | None:
    """`doc` with its first Chinese PERSON replaced by `name`, and where `name` now is."""
    target = next(((s, e) for k, s, e in sorted(doc.spans, key=lambda x: x[1])
                   if k == "PERSON" and HAN_NAME.fullmatch(doc.text[s:e])), None)
    if target is None:
        return None
    start, end = target
    before, after = doc.text[:start], doc.text[end:]
    lead = " " if spaced and before and not before.endswith(" ") else ""
    trail = " " if spaced and after and not after.startswith(" ") else ""
    inserted = lead + name + trail
    shift = len(inserted) - (end - start)
    new_start = start + len(lead)
    spans = []
    for kind, s, e in doc.spans:
        if (s, e) == target:
            spans.append((kind, new_start, new_start + len(name)))
        elif e <= start:
            spans.append((kind, s, e))
        elif s >= end:
            spans.append((kind, s + shift, e + shift))
        # a span overlapping the name but not it (nested labels) is dropped
    return Document(before + inserted + after, spans), (new_start, new_start + len(name))


def build(root: Path, plan: dict[str, Any], limit: int, seed: int
          ) -> list[tuple[str, Document, tuple[int, int]]]:
    names = english_names(root, plan["names"])
    rng = random.Random(seed)
    samples = []
    for corpus, split in plan["chinese"]:
        made = 0
        for doc in load(root, corpus, split):
            if made >= limit:
                break
            replaced = with_english_name(doc, rng.choice(names), spaced=rng.random() < 0.5)
            if replaced is not None:
                samples.append((corpus, *replaced))
                made += 1
    return samples


def predictor(engine: str) -> Callable[[Sequence[str]], list[Prediction]]:
    if engine == "presidio":
        from bench.pii_eval import presidio_default
        return presidio_default()
    from app.pii.engine import PiiEngine

    ours = PiiEngine()

    def predict(texts: Sequence[str]) -> list[Prediction]:
        results = ours.analyze_batch(list(texts), languages=["auto"] * len(texts))
        return [[(f.type, f.start, f.end) for f in findings] for _, findings in results]

    return predict


def _found(span: tuple[int, int], predicted: Prediction, *, exact: bool) -> bool:
    s, e = span
    for kind, ps, pe in predicted:
        if kind != "PERSON":
            continue
        if exact and (ps, pe) == (s, e):
            return True
        shorter = min(e - s, pe - ps)
        if not exact and shorter > 0 and min(e, pe) - max(s, ps) >= shorter / 2:
            return True
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, required=True)
    parser.add_argument("--split", choices=("train", "test"), default="test",
                        help="train: tuning sentences and names; test: the reported ones")
    parser.add_argument("--limit", type=int, default=1500, help="sentences per Chinese corpus")
    parser.add_argument("--engine", choices=("ours", "presidio"), default="ours")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--show", type=int, default=0, help="print N missed names")
    args = parser.parse_args()
    samples = build(args.corpora, TUNE if args.split == "train" else REPORT, args.limit,
                    args.seed)
    predict = predictor(args.engine)
    predict([doc.text for _, doc, _ in samples[:20]])  # warm-up
    started = time.process_time()
    predictions = predict([doc.text for _, doc, _ in samples])
    cpu = time.process_time() - started
    print(f"engine {args.engine}, split {args.split}, {len(samples)} sentences, "
          f"CPU {cpu:.1f} s\n")
    print("| corpus | sentences | English names found (overlap / exact) | "
          "PERSON + LOCATION P / R / F1 |")
    print("|---|---:|---|---|")
    shown = 0
    for corpus in dict.fromkeys(c for c, _, _ in samples):
        rows = [(doc, span, pred) for (c, doc, span), pred in zip(samples, predictions,
                                                                  strict=True) if c == corpus]
        overlap = sum(_found(span, pred, exact=False) for _, span, pred in rows) / len(rows)
        exact = sum(_found(span, pred, exact=True) for _, span, pred in rows) / len(rows)
        tally = score([d for d, _, _ in rows], [p for _, _, p in rows], CORPORA[corpus].neutral,
                      rule="overlap")
        p, r, f = prf(tally)
        print(f"| {corpus} | {len(rows)} | {overlap:.3f} / {exact:.3f} | "
              f"{p:.3f} / {r:.3f} / {f:.3f} |")
        for doc, span, pred in rows:
            if shown < args.show and not _found(span, pred, exact=False):
                shown += 1
                print(f"    missed {doc.text[span[0]:span[1]]!r} in {doc.text[:100]!r}: "
                      f"{[(k, doc.text[s:e]) for k, s, e in pred]}")


if __name__ == "__main__":
    main()
