"""Context words near a match raise its score.

Presidio's default enhancer compares context words with spaCy lemmas, which a Chinese text
without a trained pipeline does not have, and which our NER-only English pipeline skips for
speed. This one looks at a window of characters before (and a little after) the match:
substrings for Chinese words, whole words for Latin ones.
"""

from __future__ import annotations

import re
from functools import lru_cache

from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts

BOOST = 0.35
MIN_WITH_CONTEXT = 0.4
WINDOW_BEFORE = 28
WINDOW_AFTER = 12


@lru_cache(maxsize=4096)
def _word_pattern(word: str) -> re.Pattern[str]:
    escaped = re.escape(word.lower())
    return re.compile(rf"(?<![a-z0-9]){escaped}(?![a-z0-9])" if word.isascii() else escaped)


@lru_cache(maxsize=256)
def _any_word(words: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile("|".join(f"(?:{_word_pattern(w).pattern})" for w in words if w) or "(?!)")


def has_context(window: str, words: list[str]) -> str | None:
    """The first of `words` found in `window`, if any (one search for all of them first: most
    matches have none)."""
    lowered = window.lower()
    if not _any_word(tuple(words)).search(lowered):
        return None
    for word in words:
        if word and _word_pattern(word).search(lowered):
            return word
    return None


class ContextAnalyzer(AnalyzerEngine):
    """Presidio's AnalyzerEngine with its context step in linear time.

    Presidio hands each recognizer its own results and everyone else's by filtering all results
    once per recognizer: recognizers x results steps, seconds for a text full of phone numbers.
    Here the results are grouped once, and only a recognizer that overrides
    `enhance_using_context` is called; the results come out in the same order as Presidio's.
    """

    def _enhance_using_context(self, text: str, raw_results: list[RecognizerResult],
                               nlp_artifacts: NlpArtifacts, recognizers: list[EntityRecognizer],
                               context: list[str] | None = None) -> list[RecognizerResult]:
        key = RecognizerResult.RECOGNIZER_IDENTIFIER_KEY
        groups: dict[str, list[RecognizerResult]] = {}
        for result in raw_results:
            groups.setdefault(result.recognition_metadata[key], []).append(result)
        results: list[RecognizerResult] = []
        for recognizer in recognizers:
            own = groups.get(recognizer.id, [])
            if type(recognizer).enhance_using_context is not \
                    EntityRecognizer.enhance_using_context:
                others = [r for r in raw_results if r.recognition_metadata[key] != recognizer.id]
                own = recognizer.enhance_using_context(
                    text=text, raw_recognizer_results=own, other_raw_recognizer_results=others,
                    nlp_artifacts=nlp_artifacts, context=context)
            results.extend(own)
        return self.context_aware_enhancer.enhance_using_context(
            text=text, raw_results=results, nlp_artifacts=nlp_artifacts,
            recognizers=recognizers, context=context)


class WindowContextEnhancer(ContextAwareEnhancer):
    def __init__(self) -> None:
        super().__init__(context_similarity_factor=BOOST,
                         min_score_with_context_similarity=MIN_WITH_CONTEXT,
                         context_prefix_count=0, context_suffix_count=0)

    def enhance_using_context(self, text: str, raw_results: list[RecognizerResult],
                              nlp_artifacts: NlpArtifacts | None,
                              recognizers: list[EntityRecognizer],
                              context: list[str] | None = None) -> list[RecognizerResult]:
        by_id = {recognizer.id: recognizer for recognizer in recognizers}
        for result in raw_results:
            metadata = result.recognition_metadata or {}
            recognizer = by_id.get(metadata.get(RecognizerResult.RECOGNIZER_IDENTIFIER_KEY, ""))
            words = [*(recognizer.context or [] if recognizer else []), *(context or [])]
            if not words or result.score >= 1.0:
                continue
            window = (text[max(0, result.start - WINDOW_BEFORE):result.start] + " \u0000 " +
                      text[result.end:result.end + WINDOW_AFTER])
            word = has_context(window, words)
            if word is None:
                continue
            result.score = min(1.0, max(result.score + BOOST, MIN_WITH_CONTEXT))
            if result.analysis_explanation is not None:
                result.analysis_explanation.set_supportive_context_word(word)
            metadata[RecognizerResult.IS_SCORE_ENHANCED_BY_CONTEXT_KEY] = True
        return raw_results
