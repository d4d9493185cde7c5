from __future__ import annotations

import pytest

from app.pii.engine import DEFAULT_EN_MODEL, PiiEngine
from app.pii.service import get_engine


@pytest.fixture(scope="session")
def engine() -> PiiEngine:
    return get_engine(DEFAULT_EN_MODEL)


def found(engine: PiiEngine, text: str, language: str = "auto") -> list[tuple[str, str]]:
    """(type, exact original substring) of every finding."""
    _, findings = engine.analyze(text, language=language)
    return [(f.type, text[f.start:f.end]) for f in findings]
