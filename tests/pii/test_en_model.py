"""The shipped English model is the one that was measured: every file is checked before load."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

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
