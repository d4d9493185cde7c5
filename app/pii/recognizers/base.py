"""A small recognizer unit: regular expressions plus a scoring function on the matched text.

`score(value)` returns the score of a match, or None to drop it (a failed check character, an
impossible date). Context words are applied afterwards by the engine's context enhancer.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import regex
from presidio_analyzer import AnalysisExplanation, EntityRecognizer, RecognizerResult
from presidio_analyzer.nlp_engine import NlpArtifacts

# In running Chinese text \b does not separate 号 from 1: bound numbers by characters instead.
NOT_AFTER_ALNUM = r"(?<![0-9A-Za-z])"
NOT_BEFORE_ALNUM = r"(?![0-9A-Za-z])"
SEP = r"[ \-]?"  # digits split by a space or a hyphen are still one number

Scorer = Callable[[str], float | None]


def digits_only(value: str) -> str:
    return "".join(c for c in value if c.isalnum())


def make_result(recognizer: EntityRecognizer, *, entity: str, start: int, end: int,
                score: float) -> RecognizerResult:
    name = str(recognizer.name)  # type: ignore[has-type]
    return RecognizerResult(
        entity_type=entity, start=start, end=end, score=score,
        analysis_explanation=AnalysisExplanation(recognizer=name, original_score=score),
        recognition_metadata={RecognizerResult.RECOGNIZER_NAME_KEY: name,
                              RecognizerResult.RECOGNIZER_IDENTIFIER_KEY: recognizer.id},
    )


Span = tuple[int, int, float]  # start, end, score


class SpanRecognizer(EntityRecognizer):
    """One entity type, whose subclass finds (start, end, score) spans in `find`."""

    def __init__(self, *, name: str, entity: str, language: str, context: Iterable[str] = ()):
        super().__init__(supported_entities=[entity], name=name, supported_language=language,
                         context=list(context))

    def load(self) -> None:
        return None

    def find(self, text: str) -> Iterable[Span]:
        raise NotImplementedError

    def analyze(self, text: str, entities: list[str],
                nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        return [make_result(self, entity=entity, start=start, end=end, score=score)
                for start, end, score in self.find(text)]


class PatternUnit(EntityRecognizer):
    def __init__(self, *, name: str, entity: str, language: str, patterns: Sequence[str],
                 score: Scorer, context: Iterable[str] = (), flags: int = 0):
        self._patterns = [regex.compile(p, flags | regex.VERSION1) for p in patterns]
        self._score = score
        super().__init__(supported_entities=[entity], name=name, supported_language=language,
                         context=list(context))

    def load(self) -> None:
        return None

    def analyze(self, text: str, entities: list[str],
                nlp_artifacts: NlpArtifacts | None = None) -> list[RecognizerResult]:
        entity = self.supported_entities[0]
        found: dict[tuple[int, int], RecognizerResult] = {}
        for pattern in self._patterns:
            for match in pattern.finditer(text):
                score = self._score(match.group())
                if score is None or (match.start(), match.end()) in found:
                    continue
                found[(match.start(), match.end())] = make_result(
                    self, entity=entity, start=match.start(), end=match.end(), score=score)
        return list(found.values())
