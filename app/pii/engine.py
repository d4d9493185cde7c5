"""The PII detector: Presidio's AnalyzerEngine, configured offline and loaded once per process.

English NER runs only the pipeline components the `ner` component needs; every other component
of the spaCy package stays disabled. Chinese needs no statistical model: identifiers, names and
addresses come from the recognizers in `app.pii.recognizers`. Text is normalised first and every
finding is mapped back to offsets in the text exactly as sent.
"""

from __future__ import annotations

import bisect
import importlib
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import spacy
import thinc.api
from presidio_analyzer import RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from spacy.language import Language
from spacy.tokens import Doc

from app.errors import ServiceUnavailable
from app.pii import en_model
from app.pii.context import ContextAnalyzer, WindowContextEnhancer
from app.pii.language import detect_language, han_count, latin_word_count, ner_input
from app.pii.normalize import Normalized, normalize
from app.pii.recognizers.catalog import build_recognizers
from app.pii.recognizers.cn_entities import ChineseEntityRecognizer, TaggedArtifacts, window_words
from app.pii.refine import refine
from app.pii.zh_model import Word, tagger

DEFAULT_EN_MODEL = en_model.NAME
SUPPORTED_LANGUAGES = ("en", "zh")
LANGUAGE_CHOICES = ("auto", *SUPPORTED_LANGUAGES)
DEFAULT_THRESHOLD = 0.4
NLP_GROUP = 4  # windows per spaCy call: up to 8,000 characters under its lock
NER_LABELS = {"PER": "PERSON", "PERSON": "PERSON", "LOC": "LOCATION", "GPE": "LOCATION",
              "FAC": "LOCATION", "ORG": "ORGANIZATION", "NORP": "NRP", "DATE": "DATE_TIME",
              "TIME": "DATE_TIME"}
MIXED_TEXT_ENTITIES = ["PERSON", "LOCATION"]
CHINESE_MODEL_ENTITIES = frozenset({"PERSON", "LOCATION", "ORGANIZATION"})
NAMED_ENTITIES = frozenset({"PERSON", "LOCATION", "ORGANIZATION", "NRP", "DATE_TIME"})
WINDOW = 2_000  # characters a recognizer sees at once: bounds the cost of any pattern
OVERLAP = 200
SEEN_WINDOWS = 256  # English windows a scan remembers the model's reading of (about 2 MB)


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


def load_ner_pipeline(model: str) -> Language:
    """Load the shipped model (checked against its digests), or an installed spaCy package
    (never downloaded), with only what NER needs enabled."""
    if model == en_model.NAME:
        nlp: Language = spacy.load(en_model.verified_path())
    else:
        try:
            nlp = importlib.import_module(model).load()
        except ModuleNotFoundError:
            nlp = spacy.load(model)  # a path, or a package spaCy finds by its entry point
    if "ner" not in nlp.pipe_names:
        raise ValueError(f"spaCy model {model!r} has no 'ner' component")
    needed = {"ner"} | {name for name, pipe in nlp.pipeline
                        if "ner" in getattr(pipe, "listening_components", [])}
    nlp.select_pipes(enable=sorted(needed))
    return nlp


class _PreloadedNlpEngine(SpacyNlpEngine):
    """SpacyNlpEngine over pipelines we loaded; its own load() would download missing models."""

    def __init__(self, pipelines: dict[str, Language]):
        super().__init__(models=[{"lang_code": lang, "model_name": "preloaded"}
                                 for lang in pipelines],
                         ner_model_configuration=NerModelConfiguration(
                             model_to_presidio_entity_mapping=NER_LABELS,
                             labels_to_ignore=["CARDINAL", "ORDINAL", "QUANTITY", "MONEY",
                                               "PERCENT", "PRODUCT", "EVENT", "WORK_OF_ART",
                                               "LAW", "LANGUAGE"]))
        self.nlp = pipelines  # type: ignore[assignment]

    def load(self) -> None:
        return None

    def _doc_to_nlp_artifact(self, doc: Doc, language: str) -> NlpArtifacts:
        """Only what our recognizers read, the entities and their scores: no lemmas or token
        offsets, whose building cost a fifth of an English scan (our context enhancer reads the
        text itself)."""
        entities, scores = self._get_updated_entities(
            list(doc.ents), [float(self.ner_model_configuration.default_score or 0.85)]
            * len(doc.ents))
        return NlpArtifacts(entities=entities, tokens=doc, tokens_indices=[], lemmas=[],
                            nlp_engine=self, language=language, scores=scores)


class PiiEngine:
    def __init__(self, *, en_model: str = DEFAULT_EN_MODEL):
        self.en_model = en_model
        self._ops = thinc.api.NumpyOps()
        self._nlp_lock = threading.Lock()  # spaCy pipelines are not promised to be thread-safe
        pipelines = {"en": load_ner_pipeline(en_model), "zh": spacy.blank("zh")}
        self.nlp_engine = _PreloadedNlpEngine(pipelines)
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
        for first in range(0, len(pieces), NLP_GROUP):
            group = pieces[first:first + NLP_GROUP]
            deadline.check()
            if tag_chinese:  # the Chinese model reads each text whole, once
                new = list(dict.fromkeys(i for i, _ in group if chosen[i] == "zh"
                                         and i not in tagged))
                for i, text_words in zip(new, tagger().tag_many([normalized[i].text for i in new]),
                                         strict=True):
                    tagged[i] = (text_words, [w.start for w in text_words])
            english = self._english_artifacts(
                [(k, normalized[i].text[w.start:w.end]) for k, (i, w) in enumerate(group)
                 if chosen[i] == "en" or latin_word_count(normalized[i].text[w.start:w.end]) >= 3],
                seen)
            for k, (i, window) in enumerate(group):
                words = (window_words(*tagged[i], window.start, window.end) if i in tagged
                         else None)
                found[i] += self._analyze_window(normalized[i].text, window, chosen[i],
                                                 english.get(k), words, entities, threshold)
        return [(lang, self._finish(norm, results))
                for norm, lang, results in zip(normalized, chosen, found, strict=True)]

    def _english_artifacts(self, wanted: Sequence[tuple[int, str]],
                           seen: dict[str, NlpArtifacts]) -> dict[int, NlpArtifacts]:
        """spaCy's NER over the windows that are English or have English words in them.

        A window whose text the model has read before in this scan (`seen`: repeated lines,
        a text pasted twice) is not read again. The pipeline's lock is held for one group of
        windows at a time, never for a whole scan, so a long text does not hold up a short one.
        """
        inputs = {key: ner_input(text) for key, text in wanted if text.strip()}
        new = [text for text in dict.fromkeys(inputs.values()) if text not in seen]
        if new:
            with self._nlp_lock:
                batch = self.nlp_engine.process_batch(new, "en", batch_size=NLP_GROUP)
                read = {text: item[1] for text, item in zip(new, batch, strict=True)}
            if len(seen) < SEEN_WINDOWS:
                seen.update(read)
        else:
            read = {}
        return {key: read[text] if text in read else seen[text] for key, text in inputs.items()}

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
                            for r in recognizer.analyze(part, mixed, en) if r.score >= threshold]
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


class ScanTimeout(ServiceUnavailable):
    type, title = "pii-scan-timeout", "PII scan took too long"

    def __init__(self, limit: float):
        super().__init__(f"the text could not be scanned for personal data within {limit:g} s "
                         "(PGW_PII_SCAN_SECONDS); nothing was stored or returned",
                         limit_seconds=limit)


class Deadline:
    def __init__(self, seconds: float | None):
        self.seconds = seconds
        self._at = time.monotonic() + (seconds or 0)

    def check(self) -> None:
        if self.seconds is not None and time.monotonic() > self._at:
            raise ScanTimeout(self.seconds)


@dataclass(frozen=True)
class Window:
    """A stretch of text analysed at once; it reports only what starts in the part it owns."""

    start: int
    end: int
    own_start: int
    own_end: int

    def owns(self, position: int) -> bool:
        return self.own_start <= position < self.own_end


def windows(text: str) -> list[Window]:
    """Overlapping windows of at most WINDOW characters, cut at a line or sentence end if any.

    Neighbours overlap by OVERLAP characters and split the overlap between them, so a finding
    shorter than half of it is reported whole, once.
    """
    if len(text) <= WINDOW:
        return [Window(0, len(text), 0, len(text))]
    cuts = []
    start = 0
    while len(text) - start > WINDOW:
        end = _cut(text, start + WINDOW // 2, start + WINDOW)
        cuts.append((start, end))
        start = end - OVERLAP
    cuts.append((start, len(text)))
    result = []
    for index, (start, end) in enumerate(cuts):
        own_start = 0 if index == 0 else start + OVERLAP // 2
        own_end = len(text) if index == len(cuts) - 1 else end - OVERLAP // 2
        result.append(Window(start, end, own_start, own_end))
    return result


def _cut(text: str, low: int, high: int) -> int:
    """Where to end a window: after the last line break, sentence end or space in [low, high).

    Looking back as far as half a window, a window ends inside a token (a long URL) only where
    the text has no space for 1,000 characters."""
    for breaks in ("\n", "。！？.!?；;", " \t，,、"):
        best = max(text.rfind(c, low, high) for c in breaks)
        if best >= low:
            return best + 1
    return high


def resolve_overlaps(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Keep the strongest of overlapping findings.

    An identifier (a match that passed a checksum or a strict format) beats a named entity of
    another type over the same characters, whatever the model's score: `2001:db8::1` is an IP
    address, not a date and an organisation. An identifier inside a longer one (the e-mail
    address in a URL) goes, so the whole URL is protected. Then the higher score wins, then the
    longer span.
    """
    identifiers = sorted((r for r in results if r.entity_type not in NAMED_ENTITIES),
                         key=lambda r: (r.start, -r.end))
    inside = set()  # an identifier within a longer one (the e-mail in a URL) goes with it
    reach = -1
    for result in identifiers:
        if result.end <= reach:
            inside.add(id(result))
        reach = max(reach, result.end)
    results = [r for r in results if id(r) not in inside]
    kept: list[RecognizerResult] = []  # disjoint, in text order
    starts: list[int] = []
    for result in sorted(results, key=lambda r: (r.entity_type in NAMED_ENTITIES, -r.score,
                                                 -(r.end - r.start), r.start)):
        at = bisect.bisect_left(starts, result.start)
        if (at and kept[at - 1].end > result.start) or \
                (at < len(kept) and kept[at].start < result.end):
            continue
        kept.insert(at, result)
        starts.insert(at, result.start)
    return kept


def _finding(norm: Normalized, result: RecognizerResult) -> Finding:
    start, end = norm.original_span(result.start, result.end)
    metadata = result.recognition_metadata or {}
    return Finding(type=result.entity_type, start=start, end=end, score=round(result.score, 4),
                   recognizer=str(metadata.get(RecognizerResult.RECOGNIZER_NAME_KEY, "")))


def analyze_many(engine: PiiEngine, texts: Sequence[str], *, time_limit: float | None = None,
                 group: int = 32) -> list[list[Finding] | ScanTimeout]:
    """Findings in each of many texts (language detected per text), or the ScanTimeout of a
    text that could not be scanned within `time_limit` seconds of its own.

    Texts go through `analyze_batch` `group` at a time, so spaCy runs once per group of
    windows; a group gets `time_limit` times its size. A group that runs out of time is scanned
    again text by text, each with `time_limit`, so one slow text fails alone.
    """
    results: list[list[Finding] | ScanTimeout] = []
    for first in range(0, len(texts), group):
        chunk = list(texts[first:first + group])
        limit = None if time_limit is None else time_limit * len(chunk)
        try:
            scanned = engine.analyze_batch(chunk, languages=["auto"] * len(chunk),
                                           time_limit=limit)
            results.extend(found for _, found in scanned)
            continue
        except ScanTimeout:
            pass
        for text in chunk:
            try:
                results.append(engine.analyze(text, time_limit=time_limit)[1])
            except ScanTimeout as exc:
                results.append(exc)
    return results
