"""The PII detector: Presidio's AnalyzerEngine, configured offline and loaded once per process.

English NER runs only the pipeline components the `ner` component needs; every other component
of the spaCy package stays disabled. Chinese needs no statistical model: identifiers, names and
addresses come from the recognizers in `app.pii.recognizers`. Text is normalised first and every
finding is mapped back to offsets in the text exactly as sent.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import spacy
import thinc.api
from presidio_analyzer import RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts
from spacy.tokens import Doc

from app.pii import en_model
from app.pii.context import ContextAnalyzer, WindowContextEnhancer
from app.pii.deadline import Deadline
from app.pii.en_model import PreloadedNlpEngine, load_ner_pipeline
from app.pii.en_model import ops as model_ops
from app.pii.language import (
    detect_language,
    han_count,
    holds_in_chinese,
    latin_stretches,
    ner_input,
    worth_english_ner,
)
from app.pii.normalize import Normalized, normalize
from app.pii.overlaps import resolve_overlaps
from app.pii.recognizers.catalog import build_recognizers
from app.pii.recognizers.cn_entities import ChineseEntityRecognizer, TaggedArtifacts, window_words
from app.pii.refine import recognizer_name, refine
from app.pii.scan_process import Pending, ScanProcess
from app.pii.sharing import (
    WindowKey,
    answered_windows,
    as_answer,
    from_answer,
    helped,
    lend_ner,
    lend_windows,
)
from app.pii.vocabulary import Vocabulary
from app.pii.windows import Window, windows
from app.pii.zh_model import Word, tagger

logger = logging.getLogger(__name__)

DEFAULT_EN_MODEL = en_model.NAME
SUPPORTED_LANGUAGES = ("en", "zh")
LANGUAGE_CHOICES = ("auto", *SUPPORTED_LANGUAGES)
DEFAULT_THRESHOLD = 0.4
NLP_GROUP = 4  # windows per spaCy call: up to 8,000 characters under its lock
MIXED_TEXT_ENTITIES = ["PERSON", "LOCATION"]
CHINESE_MODEL_ENTITIES = frozenset({"PERSON", "LOCATION", "ORGANIZATION"})
# English windows a scan remembers the model's reading of (about 2 MB), and as many findings
SEEN_WINDOWS = 256


@dataclass(frozen=True)
class Finding:
    type: str
    start: int
    end: int
    score: float
    recognizer: str


class UnsupportedValue(ValueError):
    def __init__(self, what: str, value: str, supported: Sequence[str]):
        super().__init__(f"unsupported {what} {value!r}; supported: {', '.join(supported)}")
        self.what, self.value, self.supported = what, value, list(supported)


class PiiEngine:
    def __init__(self, *, en_model: str = DEFAULT_EN_MODEL):
        self.en_model = en_model
        self._ops = model_ops()
        self._nlp_lock = threading.Lock()  # spaCy pipelines are not promised to be thread-safe
        self.scan_process: ScanProcess | None = None  # shares the model work of long scans
        pipelines = {"en": load_ner_pipeline(en_model), "zh": spacy.blank("zh")}
        self.nlp_engine = PreloadedNlpEngine(pipelines)
        # what scans add to the English vocabulary is forgotten once they are done with it
        self.vocabulary = Vocabulary(pipelines["en"])
        registry = RecognizerRegistry(supported_languages=list(SUPPORTED_LANGUAGES))
        for recognizer in build_recognizers():
            registry.add_recognizer(recognizer)
        self.analyzer = ContextAnalyzer(
            registry=registry, nlp_engine=self.nlp_engine,
            supported_languages=list(SUPPORTED_LANGUAGES),
            context_aware_enhancer=WindowContextEnhancer(),
        )
        # Chinese recognizers read the text itself: no spaCy tokens to build for them
        self._no_artifacts = NlpArtifacts(entities=[], tokens=Doc(pipelines["zh"].vocab, words=[]),
                                          tokens_indices=[], lemmas=[],
                                          nlp_engine=self.nlp_engine, language="zh")
        # English NER for the Latin-script stretches of Chinese text (the Chinese model has run)
        self._mixed_recognizers = [
            r for r in registry.get_recognizers("en", all_fields=True)
            if set(r.supported_entities) & set(MIXED_TEXT_ENTITIES)
            and not isinstance(r, ChineseEntityRecognizer)]
        self._english_only = sorted(
            set(self.analyzer.get_supported_entities("en"))
            - set(self.analyzer.get_supported_entities("zh")) - set(MIXED_TEXT_ENTITIES)
            - {"ORGANIZATION"})
        for recognizer in registry.recognizers:  # load now, not on the first request
            recognizer.load()
            recognizer.is_loaded = True
        self.supported_entities = sorted(
            {e for lang in SUPPORTED_LANGUAGES for e in self.analyzer.get_supported_entities(lang)}
        )

    def check(self, *, language: str = "auto", entities: Sequence[str] | None = None) -> None:
        if language not in LANGUAGE_CHOICES:
            raise UnsupportedValue("language", language, LANGUAGE_CHOICES)
        for entity in entities or ():
            if entity not in self.supported_entities:
                raise UnsupportedValue("entity type", entity, self.supported_entities)

    def analyze(self, text: str, *, language: str = "auto", entities: Sequence[str] | None = None,
                threshold: float = DEFAULT_THRESHOLD,
                time_limit: float | None = None) -> tuple[str, list[Finding]]:
        return self.analyze_batch([text], languages=[language], entities=entities,
                                  threshold=threshold, time_limit=time_limit)[0]

    def analyze_batch(self, texts: Sequence[str], *, languages: Sequence[str],
                      entities: Sequence[str] | None = None,
                      threshold: float = DEFAULT_THRESHOLD,
                      time_limit: float | None = None) -> list[tuple[str, list[Finding]]]:
        """Detect PII in many texts; English NER runs over the batch with spaCy's `pipe`.

        Each text is analysed in windows of at most WINDOW characters, so no recognizer sees more
        than that at once, and the scan checks its deadline between windows: past `time_limit`
        seconds it raises ScanTimeout instead of answering with a partial result.
        """
        self.check(entities=entities)
        for language in set(languages):
            self.check(language=language)
        deadline = Deadline(time_limit)
        with self.vocabulary.held(deadline):
            return self._analyze_batch(texts, languages, entities, threshold, deadline)

    def _analyze_batch(self, texts: Sequence[str], languages: Sequence[str],
                       entities: Sequence[str] | None, threshold: float,
                       deadline: Deadline) -> list[tuple[str, list[Finding]]]:
        # thinc keeps its backend in a context variable, and every call from a worker thread runs
        # in a fresh copy of the context: without this, each call looks the backend up again
        # through the package entry points (a third of the time of a short text).
        thinc.api.set_current_ops(self._ops)
        normalized = [normalize(text) for text in texts]
        chosen = [detect_language(n.text) if lang == "auto" else lang
                  for n, lang in zip(normalized, languages, strict=True)]
        pieces = [(i, window) for i, norm in enumerate(normalized)
                  for window in windows(norm.text)]
        found: list[list[RecognizerResult]] = [[] for _ in texts]
        tagged: dict[int, tuple[list[Word], list[int]]] = {}
        seen: dict[str, NlpArtifacts] = {}
        tag_chinese = not entities or bool(set(entities) & CHINESE_MODEL_ENTITIES)
        english = {p: ner_input(text if chosen[i] == "en" else latin_stretches(text))
                   for p, (i, w) in enumerate(pieces)
                   if (text := normalized[i].text[w.start:w.end]).strip()
                   and (chosen[i] == "en" or worth_english_ner(text))}
        # an English window's findings depend on nothing but its text and the part it owns
        keyed: dict[int, WindowKey] = {}
        for p in english:
            i, window = pieces[p]
            if chosen[i] == "en":
                keyed[p] = (normalized[i].text[window.start:window.end],
                            window.own_start - window.start, window.own_end - window.start)
        lent, pending = lend_windows(self.scan_process, keyed, entities=entities,
                                     threshold=threshold,
                                     types=frozenset(entities or self.supported_entities))
        for p in lent:
            del english[p]
        if pending is None:
            pending = lend_ner(self.scan_process, english.values())
        per_piece: list[list[RecognizerResult]] = [[] for _ in pieces]
        analysed: dict[WindowKey, list[list[Any]]] = {}  # a window repeated is analysed once
        try:
            for first in range(0, len(pieces), NLP_GROUP):
                group = pieces[first:first + NLP_GROUP]
                deadline.check()
                if tag_chinese:  # the Chinese model reads each text whole, once
                    new = list(dict.fromkeys(i for i, _ in group if chosen[i] == "zh"
                                             and i not in tagged))
                    for i, text_words in zip(new, self._tag([normalized[i].text for i in new],
                                                            deadline), strict=True):
                        tagged[i] = (text_words, [w.start for w in text_words])
                read = self._english_artifacts(
                    {k: english[first + k] for k in range(len(group)) if first + k in english
                     and keyed.get(first + k) not in analysed}, seen, pending, deadline)
                for k, (i, window) in enumerate(group):
                    key = keyed.get(first + k)
                    if first + k in lent:
                        continue
                    if key in analysed:
                        per_piece[first + k] = from_answer(analysed[key], window.start)
                        continue
                    words = (window_words(*tagged[i], window.start, window.end) if i in tagged
                             else None)
                    per_piece[first + k] = self._analyze_window(
                        normalized[i].text, window, chosen[i], read.get(k), words, entities,
                        threshold)
                    if key is not None and len(analysed) < SEEN_WINDOWS:
                        analysed[key] = as_answer(per_piece[first + k], start=window.start)
            if lent:
                self._take_lent(pieces, lent, pending, per_piece, entities, threshold,
                                deadline)
        finally:
            if pending is not None:
                pending.abandon()
        for (i, _), results in zip(pieces, per_piece, strict=True):
            found[i] += results
        return [(lang, self._finish(norm, results))
                for norm, lang, results in zip(normalized, chosen, found, strict=True)]

    def start_scan_process(self, min_chars: int, *, started: ScanProcess | None = None) -> None:
        """Share the model work of scans longer than `min_chars` with a helper process (0:
        never; nor on one core): `started` (new_scan_process), or one started now."""
        if self.scan_process is not None:
            if started is not None:  # another thread was first
                started.close()
            return
        self.scan_process = started or new_scan_process(self.en_model, min_chars)

    def _take_lent(self, pieces: Sequence[tuple[int, Window]], lent: dict[int, WindowKey],
                   pending: Pending | None, per_piece: list[list[RecognizerResult]],
                   entities: Sequence[str] | None, threshold: float,
                   deadline: Deadline) -> None:
        """The findings of the windows lent to the helper, into `per_piece`: the helper's
        answer; if it failed (or is stuck and the scan has no deadline), what it did answer,
        and the rest read here, as this process reads its own windows (the deadline checked
        and the model's lock taken a group of windows at a time)."""
        keys = list(dict.fromkeys(lent.values()))
        found = helped(pending, keys, deadline)
        if found is None:
            found = answered_windows(pending, keys)
            missing = [key for key in keys if key not in found]
            found.update((key, as_answer(results)) for key, results in zip(
                missing, self.analyze_english_windows(missing, entities=entities,
                                                      threshold=threshold, deadline=deadline),
                strict=True))
        for p, key in lent.items():
            per_piece[p] = from_answer(found[key], pieces[p][1].start)

    def analyze_english_windows(self, windows: Sequence[WindowKey], *,
                                entities: Sequence[str] | None, threshold: float,
                                deadline: Deadline | None = None) -> list[list[RecognizerResult]]:
        """The findings of English windows, each given as its text and the part of it that it
        owns (offsets in the window), read as a scan reads its own windows, NLP_GROUP at a
        time: what the helper process answers for the windows lent to it."""
        thinc.api.set_current_ops(self._ops)
        deadline = deadline or Deadline(None)
        found = []
        for first in range(0, len(windows), NLP_GROUP):
            deadline.check()
            group = windows[first:first + NLP_GROUP]
            with self.vocabulary.held():
                read = self._english_artifacts({k: ner_input(text) for k, (text, _, _)
                                                in enumerate(group)}, {}, None, deadline)
                found += [self._analyze_window(text, Window(0, len(text), own_start, own_end),
                                               "en", read[k], None, entities, threshold)
                          for k, (text, own_start, own_end) in enumerate(group)]
        deadline.check()
        return found

    def _tag(self, texts: list[str], deadline: Deadline) -> list[list[Word]]:
        """The Chinese model's words of each text; a long one's every other sentence tagged by
        the helper process, if any."""
        model, helper = tagger(), self.scan_process
        spans, distinct = model.sentences(texts)
        own, lent = distinct[0::2], distinct[1::2]
        pending = (helper.submit("tag", lent) if helper is not None
                   and sum(map(len, distinct)) >= helper.min_chars else None)
        if pending is None:
            own, lent = distinct, []
        try:
            tags: dict[str, Any] = dict(zip(own, model.tag_sentences(own), strict=True))
            answered = helped(pending, lent, deadline)
            if answered is None:
                answered = dict(zip(lent, model.tag_sentences(lent), strict=True))
            tags.update(answered)
        finally:
            if pending is not None:
                pending.abandon()
        return model.words(texts, spans, tags)

    def _english_artifacts(self, inputs: dict[int, str], seen: dict[str, NlpArtifacts],
                           pending: Pending | None, deadline: Deadline) -> dict[int, NlpArtifacts]:
        """spaCy's NER over the windows that are English or have English words in them.

        A window whose text the model has read before in this scan (`seen`: repeated lines,
        a text pasted twice) is not read again. The pipeline's lock is held for one group of
        windows at a time, never for a whole scan, so a long text does not hold up a short one.
        Texts sent to the helper process come back as entity offsets on the same tokens.
        """
        new = [text for text in dict.fromkeys(inputs.values()) if text not in seen]
        answered = helped(pending, [text for text in new if pending is not None
                                        and text in pending.texts], deadline)
        read = self._rebuild(answered) if answered else {}
        new = [text for text in new if text not in read]
        if new:
            with self._nlp_lock:
                self.vocabulary.count(new)
                batch = self.nlp_engine.process_batch(new, "en", batch_size=NLP_GROUP)
                read.update((text, item[1]) for text, item in zip(new, batch, strict=True))
        if len(seen) < SEEN_WINDOWS:
            seen.update(read)
        return {key: read[text] if text in read else seen[text] for key, text in inputs.items()}

    def _rebuild(self, entities: dict[str, list[tuple[int, int, str]]]) -> dict[str, NlpArtifacts]:
        """The documents the helper read, from this process's tokenizer and its entities."""
        nlp = self.nlp_engine.nlp["en"]  # type: ignore[index]
        read = {}
        with self._nlp_lock:
            for text, found in entities.items():
                doc = nlp.make_doc(text)
                try:
                    doc.ents = [span for start, end, label in found
                                if (span := doc.char_span(start, end, label=label)) is not None]
                except ValueError:  # entities spaCy refuses (checked against, never seen): the
                    logger.error("PII scan helper's entities do not fit the text; read here")
                    continue  # text is read here instead
                read[text] = self.nlp_engine._doc_to_nlp_artifact(doc, "en")
        return read

    def _analyze_window(self, text: str, window: Window, language: str, en: NlpArtifacts | None,
                        words: list[Word] | None, entities: Sequence[str] | None,
                        threshold: float) -> list[RecognizerResult]:
        part = text[window.start:window.end]
        if not part.strip():
            return []
        wanted = list(entities) if entities else None
        if language == "en":
            results = self.analyzer.analyze(part, "en", entities=wanted, nlp_artifacts=en,
                                            score_threshold=threshold)
        else:
            results = self.analyzer.analyze(part, "zh", entities=wanted,
                                            nlp_artifacts=self._no_artifacts if words is None
                                            else TaggedArtifacts(self._no_artifacts, words),
                                            score_threshold=threshold)
            english: list[RecognizerResult] = []
            if en is not None:  # Latin-script stretches in Chinese text: English names, places
                mixed = [e for e in (wanted or MIXED_TEXT_ENTITIES) if e in MIXED_TEXT_ENTITIES]
                english += [r for recognizer in self._mixed_recognizers
                            for r in recognizer.analyze(part, mixed, en) if r.score >= threshold
                            and (recognizer_name(r) != "SpacyRecognizer"
                                 or holds_in_chinese(r.entity_type, part[r.start:r.end]))]
            # English-only identifiers (SSN, US licence, dates...) in Chinese text too: a few
            # Chinese characters must not hide them
            extra = [e for e in (wanted or self._english_only) if e in self._english_only]
            if extra:
                english += self.analyzer.analyze(part, "en", entities=extra,
                                                 nlp_artifacts=en or self._no_artifacts,
                                                 score_threshold=threshold)
            results += [r for r in english if not han_count(part[r.start:r.end])]
        kept = []
        for result in results:
            if window.owns(window.start + result.start):
                result.start += window.start
                result.end += window.start
                kept.append(result)
        return kept

    @staticmethod
    def _finish(norm: Normalized, results: list[RecognizerResult]) -> list[Finding]:
        return [_finding(norm, r) for r in resolve_overlaps(refine(norm.text, results))]


def new_scan_process(model: str, min_chars: int) -> ScanProcess | None:
    """A helper process for scans longer than `min_chars`, starting to load its models now;
    None when scans are not to be shared (0, or one core)."""
    if min_chars > 0 and _usable_cpus() > 1:
        return ScanProcess(model, min_chars=min_chars)
    return None


def _usable_cpus() -> int:
    """The CPUs this process may run on (a container's cpuset, not the host's count)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def _finding(norm: Normalized, result: RecognizerResult) -> Finding:
    start, end = norm.original_span(result.start, result.end)
    return Finding(type=result.entity_type, start=start, end=end, score=round(result.score, 4),
                   recognizer=recognizer_name(result))

