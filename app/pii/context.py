"""Context words near a match raise its score.

Presidio's default enhancer compares context words with spaCy lemmas, which a Chinese text
without a trained pipeline does not have, and which our NER-only English pipeline skips for
speed. This one looks at a window of characters before (and a little after) the match:
substrings for Chinese words, whole words for Latin ones.
"""

from __future__ import annotations

import re
from functools import lru_cache

from presidio_analyzer import EntityRecognizer, RecognizerResult
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


def has_context(window: str, words: list[str]) -> str | None:
    lowered = window.lower()
    for word in words:
        if word and _word_pattern(word).search(lowered):
            return word
    return None


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
