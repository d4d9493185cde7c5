"""The shipped English model is the one that was measured: every file is checked before load."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import spacy

from app.pii import en_model
from app.pii.engine import DEFAULT_EN_MODEL, PiiEngine


def test_the_shipped_model_is_the_default_and_verifies() -> None:
    assert DEFAULT_EN_MODEL == en_model.NAME
    assert en_model.verified_path() == en_model.MODEL_DIR


def test_a_changed_or_missing_file_refuses_to_load(tmp_path: Path) -> None:
    copy = tmp_path / "en_ner"
    shutil.copytree(en_model.MODEL_DIR, copy)
    with (copy / "ner" / "model").open("r+b") as weights:
        weights.seek(1000)
        byte = weights.read(1)
        weights.seek(1000)
        weights.write(bytes([byte[0] ^ 1]))
    with pytest.raises(en_model.ModelMismatch, match="ner/model: sha256"):
        en_model.verified_path(copy)
    (copy / "ner" / "model").unlink()
    with pytest.raises(en_model.ModelMismatch, match="missing"):
        en_model.verified_path(copy)


def test_the_english_model_multiplies_through_numpy_on_one_thread(engine: PiiEngine) -> None:
    """blis's own CPU detection misses some CPUs (its generic kernel then runs at a third of
    the speed); OpenBLAS through NumPy is used instead, on one thread: a process reads on one
    core, and its scan helper on the other."""
    from threadpoolctl import threadpool_info

    nlp = engine.nlp_engine.nlp["en"]  # type: ignore[index]
    layers = [layer for _, pipe in nlp.pipeline for layer in pipe.model.walk()]
    assert layers
    assert not any(layer.ops.use_blis for layer in layers)
    blas = [info for info in threadpool_info() if info["user_api"] == "blas"]
    assert blas
    assert all(info["num_threads"] == 1 for info in blas)


MANY_KINDS = [
    "Tickets for the 2024 Olympic Games in Paris cost $350, about 20 percent more than in 2020.",
    "She read Harry Potter and the Chamber of Secrets twice, then bought an iPhone 15 in Boston.",
    "The Civil Rights Act of 1964 was signed by Lyndon Johnson on July 2 at 6:45 pm.",
    "Order 3 boxes of 12 bottles, 750 ml each, for the first week of March; call 415-555-0132.",
    "Maria speaks Spanish and Portuguese, ran 42 kilometres in Berlin, and came 3rd.",
    "The Nasdaq fell 2.3% on Tuesday as Microsoft and the European Central Bank reported.",
    "we met jake at the taylor swift concert in london last friday lol, tickets were 90 quid",
    "Flight BA 117 from Heathrow to JFK, seat 42C, boarding at 10:15, gate 23, 2 bags of 23 kg.",
]


def test_the_parser_decodes_as_if_the_dropped_labels_were_masked() -> None:
    """Dropping the moves of the labels the engine ignores (all but CARDINAL) is exactly the
    same decoding as giving those moves a score too low ever to be chosen, only cheaper."""
    nlp = en_model.load_ner_pipeline(en_model.NAME)
    restricted: Any = nlp.get_pipe("ner")
    moves = restricted.moves
    decoded = {label for actions in moves.labels.values() for label in actions}
    assert not decoded & en_model.UNDECODED_LABELS
    assert "CARDINAL" in decoded
    assert {"PERSON", "GPE", "ORG", "DATE"} <= decoded
    assert restricted.model.get_ref("upper").get_dim("nO") == moves.n_moves == 38

    def entities(pipeline: spacy.language.Language) -> list[list[tuple[str, str]]]:
        return [[(e.text, e.label_) for e in doc.ents] for doc in pipeline.pipe(MANY_KINDS)]

    masked = spacy.load(en_model.verified_path(), enable=["ner"])
    assert any(label in en_model.UNDECODED_LABELS for doc in entities(masked) for _, label in doc)
    ner: Any = masked.get_pipe("ner")
    upper = ner.model.get_ref("upper")
    assert upper.get_dim("nO") == ner.moves.n_moves == 74
    bias = upper.get_param("b").copy()
    for i in range(ner.moves.n_moves):
        if ner.moves.get_class_name(i).partition("-")[2] in en_model.UNDECODED_LABELS:
            bias[i] = -1e9
    upper.set_param("b", bias)
    assert entities(nlp) == entities(masked)
